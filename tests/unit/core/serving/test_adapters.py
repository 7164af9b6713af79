"""Several LoRA adapters on one served base: each answers as its own merged export, batches never mix adapters,
and an adapter that does not fit the base is refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.errors import ConflictError, NotFoundError, ValidationError
from core.serving.adapter_files import ADAPTER_FILE
from core.serving.requests import build_request
from core.serving.schemas import SamplingFields
from core.serving.state import ServingState

PROMPTS = ["Risk level:", "Findings: no effusion.", "Transaction of 12", "Impression: no acute", "Account A42 made"]
GREEDY = {"max_tokens": 12, "temperature": 0}


def _answers(state: ServingState, model: str, prompts: list[str] = PROMPTS) -> list[list[int]]:
    return [list(r.token_ids) for r in state.generate_many_blocking(model, prompts, GREEDY)]


@pytest.fixture(scope="module")
def state(adapter_exports):  # noqa: ANN001, ANN201
    e = adapter_exports
    served = ServingState.in_process(
        {"base": e.base, "plain": e.plain, "m-a1": e.merged["a1"], "m-a2": e.merged["a2"]},
        adapters={"base": {"a1": e.adapters["a1"], "a2": e.adapters["a2"]}},
        max_wait_ms=50,
    )
    yield served
    served.close()


def test_each_adapter_answers_as_its_merged_export(state: ServingState) -> None:
    a1, a2 = _answers(state, "a1"), _answers(state, "a2")
    assert a1 == _answers(state, "m-a1")
    assert a2 == _answers(state, "m-a2")
    assert a1 != a2, "two different adapters should not give the same answers"
    assert _answers(state, "base") == _answers(state, "plain"), "no adapter active is the base model itself"


def test_adapter_logits_match_the_merged_export(state: ServingState, adapter_exports) -> None:  # noqa: ANN001
    """Tolerance 1e-4 on raw logits: x(W + BA) against xW + (xB)A in float32."""
    base = state.workers["base"].model
    merged = state.workers["m-a2"].model
    ids = base.encode("Findings: no focal consolidation, pleural effusion or pneumothorax.")
    diff = np.abs(base.prompt_logits(ids, adapter="a2") - merged.prompt_logits(ids)).max()
    assert diff < 1e-4, diff


def test_mixed_requests_batch_by_adapter(state: ServingState) -> None:
    worker = state.workers["base"]
    seen: list[tuple[set[str | None], int]] = []
    generate = worker.model.generate

    def spy(batch):  # noqa: ANN001, ANN202  (records each batch's adapters, then runs it for real)
        seen.append(({r.adapter for r in batch}, len(batch)))
        return generate(batch)

    worker.model.generate = spy  # type: ignore[method-assign]
    try:
        reqs = []
        for prompt in PROMPTS:
            for name in ("a1", "a2", "base"):
                view = state.worker(name)
                reqs.append(build_request(view, prompt, SamplingFields(model=name, **GREEDY), 12))
        worker.run_many_blocking(reqs, 60)
    finally:
        del worker.model.generate
    assert seen and all(len(adapters) == 1 for adapters, _ in seen), seen
    assert max(size for _, size in seen) > 1, f"the requests were queued together, so some should share a batch: {seen}"
    by_name = {n: [list(r.token_ids) for r in reqs if (r.adapter or "base") == n] for n in ("a1", "a2", "base")}
    assert by_name["a1"] == _answers(state, "m-a1")
    assert by_name["a2"] == _answers(state, "m-a2")


def test_load_and_unload_while_serving(state: ServingState, adapter_exports) -> None:  # noqa: ANN001
    state.load_adapter("a1-again", "base", adapter_exports.adapters["a1"])
    assert state.worker("a1-again").parent == "base"
    assert _answers(state, "a1-again", PROMPTS[:2]) == _answers(state, "m-a1", PROMPTS[:2])
    with pytest.raises(ConflictError, match="already served"):
        state.load_adapter("a1-again", "base", adapter_exports.adapters["a1"])
    state.unload_adapter("a1-again")
    with pytest.raises(NotFoundError, match="'a1-again' is not served here"):
        state.worker("a1-again")
    with pytest.raises(NotFoundError, match="no adapter 'a1-again'"):
        state.unload_adapter("a1-again")
    assert _answers(state, "a1", PROMPTS[:2]) == _answers(state, "m-a1", PROMPTS[:2]), "the others keep serving"


def _copy_adapter(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite(folder: Path, change) -> None:  # noqa: ANN001
    """Rewrite the adapter file's tensors: `change` takes and returns name -> numpy array."""
    file = folder / ADAPTER_FILE
    params = {k: v.numpy() for k, v in ort.AdapterFormat.read_adapter(str(file)).get_parameters().items()}
    fmt = ort.AdapterFormat()
    changed = change(params)
    fmt.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v)) for k, v in changed.items()})
    fmt.export_adapter(str(file))


def test_a_wrong_adapter_is_refused(state: ServingState, adapter_exports, tmp_path: Path) -> None:  # noqa: ANN001
    good = adapter_exports.adapters["a1"]
    # exported for another base model: the fingerprint differs
    other = _copy_adapter(good, tmp_path / "other-base")
    meta = json.loads((other / "finmed_export.json").read_text())
    (other / "finmed_export.json").write_text(json.dumps({**meta, "fingerprint": "0" * 32, "base_model": "elsewhere"}))
    with pytest.raises(ValidationError, match="exported for base model 'elsewhere'"):
        state.load_adapter("other", "base", other)

    # wrong rank layout: A has rank 4, its B rank 3
    def cut_b(params: dict) -> dict:
        name = next(k for k in sorted(params) if ".lora_B." in k)
        return {**params, name: params[name][:3]}

    ranks = _copy_adapter(good, tmp_path / "ranks")
    _rewrite(ranks, cut_b)
    with pytest.raises(ValidationError, match="has rank 3 but its other half has rank 4"):
        state.load_adapter("ranks", "base", ranks)

    # wrong width (an adapter of a wider model)
    def widen(params: dict) -> dict:
        name = next(k for k in sorted(params) if ".lora_A." in k)
        return {**params, name: np.zeros((params[name].shape[0] * 2, params[name].shape[1]), np.float32)}

    wide = _copy_adapter(good, tmp_path / "wide")
    _rewrite(wide, widen)
    with pytest.raises(ValidationError, match=r"the slot takes \[64, 'lora_r'\]"):
        state.load_adapter("wide", "base", wide)

    # a projection the base has no slot for
    def elsewhere(params: dict) -> dict:
        return {k.replace("q_proj", "o_proj"): v for k, v in params.items()}

    moved = _copy_adapter(good, tmp_path / "moved")
    _rewrite(moved, elsewhere)
    with pytest.raises(ValidationError, match="the base has no slot model.layers.0.attn.o_proj"):
        state.load_adapter("moved", "base", moved)

    # a base without slots, an unknown base, a folder that is no adapter
    with pytest.raises(ValidationError, match="'plain' has no adapter slots"):
        state.load_adapter("x", "plain", good)
    with pytest.raises(NotFoundError, match="no base model 'nope'"):
        state.load_adapter("x", "nope", good)
    with pytest.raises(NotFoundError, match="holds no adapter.onnx_adapter"):
        state.load_adapter("x", "base", tmp_path)
    assert sorted(state.adapters) == ["a1", "a2"], "nothing half-loaded"
