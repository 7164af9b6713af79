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


def _one_by_one(llm: LocalLLM, prompts: list[str]):  # noqa: ANN202
    """Reference level distributions: one unpadded full forward pass per prompt through the model as loaded."""
    import numpy as np
    import torch

    rows = []
    for prompt in prompts:
        ids = llm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = llm.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
        rows.append(torch.softmax(logits[llm.digit_ids], dim=-1).numpy())
    return np.stack(rows)


def _risk_prompts(llm: LocalLLM) -> list[str]:
    from domains.finance.prompts import ANSWER_PREFIX

    cases = [(5.0, "coffee"), (9000.0, "urgent wire"), (1.0, "a much longer description of the payment"), (70.0, "")]
    return [llm.render(build_messages({"amount": a, "description": d}, [])) + ANSWER_PREFIX["en"] for a, d in cases]


def test_level_probs_shared_prefix_equals_full_passes(tiny_model_dir: Path) -> None:
    """The shared-prefix cache (system prompt run once) gives what one full pass per prompt gives, batched or not,
    with a soft prompt (peft prompt tuning) and with LoRA."""
    import numpy as np
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    from domains.finance.llm import _common_prefix

    llm = LocalLLM(str(tiny_model_dir), batch_size=3)
    prompts = _risk_prompts(llm)
    ids = llm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    assert _common_prefix(ids, at_most=10**6) > len(ids[0]) // 3  # the system turn is shared
    assert _common_prefix([[1, 2, 3], [1, 2, 4]], at_most=5) == 2 and _common_prefix([[1, 2]], at_most=1) == 1
    np.testing.assert_allclose(llm.level_probs(prompts), _one_by_one(llm, prompts), atol=1e-5)
    np.testing.assert_allclose(llm.level_probs(prompts[:1]), _one_by_one(llm, prompts[:1]), atol=1e-5)

    base = llm.model
    for config in (
        PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=5),
        LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    ):
        llm.model = get_peft_model(base, config).eval()
        np.testing.assert_allclose(llm.level_probs(prompts), _one_by_one(llm, prompts), atol=1e-5)
        llm.model = llm.model.unload() if hasattr(llm.model, "unload") else llm.model.get_base_model()


def test_an_adapted_soft_prompt_serves_the_scores_it_has_in_process(tiny_train_config, tmp_path: Path) -> None:  # noqa: ANN001
    """A soft prompt on top of a LoRA run (what `finmed finance adapt` trains) exported and served: level
    distributions equal LocalLLM's within 1e-4 (fp32), and the run's calibrated threshold comes along."""
    import json

    import numpy as np

    from core.finetune.run import run_training
    from core.quantize.export import export_model
    from core.quantize.precisions import ExportOptions
    from domains.finance.llm import OnnxLLM

    lora = run_training(tiny_train_config("output.name=lora", "train.lr=0.05"), show_progress=False)
    adapt = run_training(
        tiny_train_config(f"model.base={lora}", "method.name=prompt_tuning", "method.num_virtual_tokens=8",
                          "output.name=adapt", "train.lr=0.05"),
        show_progress=False,
    )  # fmt: skip
    (adapt / "calibration.json").write_text(json.dumps({"threshold": 0.37}))
    local = LocalLLM(adapter=adapt, batch_size=2)
    folder = export_model(options=ExportOptions("fp32"), out_dir=tmp_path / "adapt-fp32", run_dir=adapt).path
    served = OnnxLLM(folder)
    prompts = _risk_prompts(local)
    expected, got = local.level_probs(prompts), served.level_probs(prompts)
    assert not np.isnan(got).any()
    assert np.abs(expected - got).max() < 1e-4
    assert served.threshold == local.threshold == 0.37
