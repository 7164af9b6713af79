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
