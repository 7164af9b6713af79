"""LocalLLM: chat-template rendering and batched greedy generation equal to one-by-one generation."""

from pathlib import Path

from domains.finance.llm import LocalLLM
from domains.finance.prompts import build_messages


def test_batched_generation_matches_single(tiny_model_dir: Path) -> None:
    llm = LocalLLM(str(tiny_model_dir), batch_size=4)
    prompts = [
        llm.render(build_messages({"amount": a, "description": d}, []))
        for a, d in [(5.0, "coffee"), (12000.0, "urgent wire to new beneficiary abroad"), (1.0, "x")]
    ]
    assert prompts[0].startswith("<|im_start|>system") and prompts[0].rstrip().endswith("assistant")
    batched = llm.generate(prompts, max_new_tokens=6)
    single = [llm.generate([p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single and len(batched) == 3
    assert llm.tokenizer.padding_side == "left"


def test_level_distribution_from_forward_equals_first_generated_step(tiny_model_dir: Path) -> None:
    import numpy as np

    from domains.finance.llm import expected_level
    from domains.finance.prompts import ANSWER_PREFIX

    llm = LocalLLM(str(tiny_model_dir), batch_size=2)
    assert llm.digit_ids is not None and len(set(llm.digit_ids)) == 6
    prompts = [
        llm.render(build_messages({"amount": a, "description": d}, [])) + ANSWER_PREFIX["en"]
        for a, d in [(5.0, "coffee"), (9000.0, "urgent wire"), (1.0, "a much longer description of the payment")]
    ]
    probs = llm.level_probs(prompts)
    assert probs.shape == (3, 6) and np.allclose(probs.sum(axis=1), 1.0)
    answers = llm.answer(prompts, max_new_tokens=3)
    from_generation = np.stack([a.level_probs for a in answers])  # type: ignore[misc]
    np.testing.assert_allclose(from_generation, probs, atol=1e-4)  # left padding in both, batch of 2 then 1
    assert np.all((expected_level(probs) >= 0) & (expected_level(probs) <= 5))


def test_onnx_llm_reads_levels_and_answers(tiny_genai_dir: Path) -> None:
    import numpy as np

    from domains.finance.llm import OnnxLLM
    from domains.finance.prompts import ANSWER_PREFIX

    llm = OnnxLLM(tiny_genai_dir)
    prompts = [llm.render(build_messages({"amount": a}, [])) + ANSWER_PREFIX["en"] for a in (5.0, 900.0)]
    probs = llm.level_probs(prompts)
    assert probs.shape == (2, 6) and np.allclose(probs.sum(axis=1), 1.0)
    answers = llm.answer(prompts, max_new_tokens=5)
    assert len(answers) == 2 and all("\n" not in a.text for a in answers)
    np.testing.assert_allclose(np.stack([a.level_probs for a in answers]), probs)  # type: ignore[misc]
