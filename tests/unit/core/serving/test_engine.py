"""The serving engine on the tiny int4 export: cached prefixes, constraints, logprobs, seeds, the one decode loop."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.serving.engine import LoadedModel
from core.serving.gen_request import Constraint, GenRequest

REPO = Path(__file__).resolve().parents[4]
SYSTEM = "<|im_start|>system\nYou are a careful analyst. Follow the rules below and answer in one line.<|im_end|>\n"
QUESTIONS = ["amount 5.00 at 02:00", "amount 900.00 new merchant", "three transfers in a minute", "hello"]


@pytest.fixture(scope="module")
def model(tiny_genai_dir: Path) -> LoadedModel:
    return LoadedModel("tiny", tiny_genai_dir, device="cpu", prefix_slots=2, max_slot_tokens=512)


def _request(model: LoadedModel, question: str, **fields: object) -> GenRequest:
    prompt = SYSTEM + f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    ids = model.encode(prompt)
    return GenRequest(prompt_ids=ids, prefix_len=model.shared_prefix_len(ids, SYSTEM), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("constraint", [None, Constraint("regex", "Risk level: [0-5]; Basis: (none|night_time)")])
def test_cached_prefix_gives_the_same_greedy_answers_as_full_prefill(
    model: LoadedModel, constraint: Constraint | None
) -> None:
    full, cached = [], []
    for question in QUESTIONS * 2:  # the second round reuses the slot built by the first
        alone = _request(model, question, max_new_tokens=12, constraint=constraint)
        model.generate([alone])
        full.append(alone.token_ids)
        reuse = _request(model, question, max_new_tokens=12, constraint=constraint)
        assert model.can_cache(reuse) and reuse.prefix_len >= 8
        model.generate_cached(reuse)
        cached.append(reuse.token_ids)
        assert reuse.finish_reason == alone.finish_reason
    assert cached == full
    assert len({tuple(t) for t in full}) > 1 or constraint is not None  # the questions do change the answers
    last = _request(model, QUESTIONS[0], max_new_tokens=4, constraint=constraint)
    model.generate_cached(last)
    assert last.cached_tokens == last.prefix_len  # the prefix came from the cache, not a new prefill


def test_json_schema_and_choice_constraints_hold(model: LoadedModel) -> None:
    schema = {
        "type": "object",
        "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 5}, "ok": {"type": "boolean"}},
        "required": ["level", "ok"],
        "additionalProperties": False,
    }
    req = _request(model, "rate it", max_new_tokens=40, constraint=Constraint.json(schema))
    model.generate([req])
    answer = json.loads(req.text)
    assert set(answer) == {"level", "ok"} and 0 <= answer["level"] <= 5 and isinstance(answer["ok"], bool)
    choice = _request(model, "pick", max_new_tokens=8, constraint=Constraint("choice", ("approve", "reject")))
    model.generate([choice])
    assert choice.text in ("approve", "reject")


def test_constrained_answers_of_different_lengths_all_finish(model: LoadedModel) -> None:
    """Six constrained rows that stop at different steps: onnxruntime-genai 0.18 failed such a static batch with
    "compute_mask() called after stop"; the engine runs constrained rows alone, so each finishes under its regex."""
    pattern = "Risk level: [0-5](; Basis: (none|night_time|a very long basis text here))?"
    constraint = Constraint("regex", pattern)
    questions = ["a", "bb", "amount 5 at 2", "three transfers", "hello there", "x y z"]

    def requests() -> list[GenRequest]:  # no shared system turn: the tiny model's answers then differ in length
        prompts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in questions]
        return [GenRequest(prompt_ids=model.encode(p), max_new_tokens=32, constraint=constraint) for p in prompts]

    batch = requests()
    model.generate(batch)
    for req in batch:
        assert req.finish_reason == "stop" and re.fullmatch(pattern, req.text), (req.text, req.finish_reason)
    alone = requests()
    for req in alone:
        model.generate([req])
    assert [r.token_ids for r in alone] == [r.token_ids for r in batch]
    assert len({len(r.token_ids) for r in batch}) > 1  # the rows did stop at different lengths


def test_logprobs_and_first_position_scores(model: LoadedModel) -> None:
    req = _request(model, QUESTIONS[1], max_new_tokens=6, logprobs=True, top_logprobs=3, score_token_ids=(5, 6, 7))
    model.generate([req])
    assert len(req.token_logprobs) == len(req.token_ids) == 6 and all(lp <= 0 for lp in req.token_logprobs)
    for token, logprob, top in zip(req.token_ids, req.token_logprobs, req.top, strict=True):
        assert len(top) == 3 and max(top, key=top.get) == token  # greedy picks the most likely token
        assert np.isclose(max(top.values()), logprob)
    logits = model.prompt_logits(req.prompt_ids)[-1].astype(np.float64)
    expected = logits[[5, 6, 7]] - np.logaddexp.reduce(logits)
    np.testing.assert_allclose(req.first_scores, expected, atol=1e-4)


def test_same_seed_same_sample(model: LoadedModel) -> None:
    def sample(seed: int) -> list[int]:
        req = _request(model, "tell me", max_new_tokens=10, do_sample=True, temperature=1.0, top_k=0, seed=seed)
        model.generate([req])
        return req.token_ids

    assert sample(7) == sample(7)
    assert any(sample(7) != sample(s) for s in (8, 9, 10))


def test_the_decode_loop_stands_in_one_file() -> None:
    """Every model output goes through core/serving/engine.py: no other source file steps a generator."""
    listed = subprocess.run(
        ["git", "grep", "-l", "generate_next_token", "--", "core", "domains", "apps", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    files = [f for f in listed.stdout.split() if f.endswith(".py")]
    assert files == ["core/serving/engine.py"], files
    source = (REPO / "core/serving/engine.py").read_text()
    assert len(re.findall(r"\.generate_next_token\(\)", source)) == 1
