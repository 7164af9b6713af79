"""Adapter slots and adapter exports: layouts from runs and configs, a two-stage chain served as one adapter on the
plain base, int4 bases keeping their slots in float, and the refusals (another base, no slots, wrong method)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ValidationError
from core.finetune.load import MERGED_FROM, merge_for_export
from core.finetune.run import run_training
from core.models.tiny import save_tiny_model
from core.quantize.export import export_model
from core.quantize.lora_slots import SlotLayout, adapter_chain, export_adapter, export_base_with_slots, layout_of
from core.quantize.precisions import ExportOptions
from core.serving.state import ServingState

REPO = Path(__file__).resolve().parents[4]


def test_layout_of_a_training_config_counts_layers_from_the_top() -> None:
    layout = layout_of(REPO / "configs" / "finance-lora.yaml", depth=30)
    assert layout == SlotLayout(
        frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"}), frozenset(range(18, 30))
    )
    assert "/model/layers.18/mlp/down_proj/lora_B/MatMul" in layout.node_names()


def test_a_two_stage_chain_is_one_adapter_on_the_plain_base(tiny_train_config, tiny_model_dir: Path, tmp_path: Path):  # noqa: ANN001, ANN201
    stage1 = run_training(tiny_train_config("output.name=stage1", "train.lr=0.05"), show_progress=False)
    stage1_base = merge_for_export(stage1, tmp_path / "stage1-base")
    assert json.loads((stage1_base / MERGED_FROM).read_text())["run"] == str(stage1.resolve())
    stage2 = run_training(
        tiny_train_config(f"model.base={stage1_base}", "output.name=stage2", "train.lr=0.05", "train.seed=9"),
        show_progress=False,
    )
    chain, base = adapter_chain(stage2)
    assert chain == [stage1 / "adapter", stage2 / "adapter"] and base == str(tiny_model_dir)

    slots = export_base_with_slots(model=str(tiny_model_dir), sources=[stage2], options=ExportOptions("fp32"),
                                   out_dir=tmp_path / "base")  # fmt: skip
    adapter = export_adapter(run_dir=stage2, base_export=slots.path, out_dir=tmp_path / "two-stage")
    ranks = [json.loads((a / "adapter_config.json").read_text())["r"] for a in chain]
    assert adapter.rank == sum(ranks) and len(adapter.chain) == 2
    merged = export_model(options=ExportOptions("fp32"), out_dir=tmp_path / "merged", run_dir=stage2).path

    state = ServingState.in_process({"base": slots.path, "merged": merged}, adapters={"base": {"clinic": adapter.path}})
    try:
        base_model, merged_model = state.workers["base"].model, state.workers["merged"].model
        ids = base_model.encode("Findings: small left pleural effusion. Impression:")
        served = base_model.prompt_logits(ids, adapter="clinic")
        assert np.abs(served - merged_model.prompt_logits(ids)).max() < 1e-4, "W0 + B1A1 + B2A2 = W1 + B2A2"
        assert np.abs(served - base_model.prompt_logits(ids)).max() > 1e-3, "the adapter changes the base's output"
    finally:
        state.close()


def test_an_int4_base_keeps_its_slots_float(adapter_exports, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    run = adapter_exports.runs["a1"]
    base = export_base_with_slots(model=str(tiny_model_dir), sources=[run], options=ExportOptions("int4"),
                                  out_dir=tmp_path / "int4")  # fmt: skip
    slots = json.loads((base.path / "finmed_export.json").read_text())["adapter_slots"]["inputs"]
    assert slots and all("lora_r" in s["shape"] and s["dtype"] == "float32" for s in slots.values())
    adapter = export_adapter(run_dir=run, base_export=base.path, out_dir=tmp_path / "a1-int4")
    state = ServingState.in_process({"base": base.path}, adapters={"base": {"a1": adapter.path}})
    try:
        ask = {"max_tokens": 8, "temperature": 0}
        assert state.generate_blocking("a1", "Risk level:", **ask).token_ids != state.generate_blocking(
            "base", "Risk level:", **ask
        ).token_ids
    finally:
        state.close()


def test_refusals(adapter_exports, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from tests.conftest import make_lora_run

    other_model = save_tiny_model(tmp_path / "other-tiny", seed=7)
    elsewhere = make_lora_run(other_model, tmp_path / "elsewhere")
    with pytest.raises(ValidationError, match="which is not the model .* was exported from"):
        export_adapter(run_dir=elsewhere, base_export=adapter_exports.base, out_dir=tmp_path / "x")
    with pytest.raises(ValidationError, match="has no adapter slots"):
        export_adapter(run_dir=adapter_exports.runs["a1"], base_export=adapter_exports.plain, out_dir=tmp_path / "y")
    with pytest.raises(ValidationError, match="quantizes the graph after the builder"):
        export_base_with_slots(model=str(tiny_model_dir), sources=[elsewhere], options=ExportOptions("gptq"),
                               out_dir=tmp_path / "z")  # fmt: skip
    assert not any(p.name in ("x", "y", "z") for p in tmp_path.iterdir()), "nothing half-written"


def test_only_lora_runs_are_adapters(tiny_train_config) -> None:  # noqa: ANN001
    run = run_training(tiny_train_config("method.name=prompt_tuning", "output.name=pt"), show_progress=False)
    with pytest.raises(ValidationError, match="only LoRA runs are served as adapters"):
        adapter_chain(run)
