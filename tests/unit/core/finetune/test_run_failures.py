"""Bad input stops a run before anything is written; a diverging run stops and keeps its last good checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConflictError, NotFoundError, ValidationError
from core.finetune.progressive import GateFailed
from core.finetune.recipe import TrainingStopped
from core.finetune.run import run_training
from core.settings import get_settings


def _runs() -> list[str]:
    runs = get_settings().runs_dir
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []


def test_empty_dataset(tiny_train_config, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValidationError, match="empty.jsonl: the dataset is empty"):
        run_training(tiny_train_config(f"dataset.path={tmp_path / 'empty.jsonl'}"), show_progress=False)
    assert _runs() == []


def test_record_without_answer(tiny_train_config, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"instruction": "do it"}\n')
    with pytest.raises(ValidationError, match="records.jsonl line 2: no assistant answer"):
        run_training(tiny_train_config(f"dataset.path={path}"), show_progress=False)
    assert _runs() == []


def test_missing_base_model(tiny_train_config, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no model folder there"):
        run_training(tiny_train_config(f"model.base={tmp_path / 'nothing'}"), show_progress=False)
    assert _runs() == []


def test_existing_run_is_not_overwritten(tiny_train_config) -> None:
    config = tiny_train_config("train.max_steps=1", "output.name=once")
    run_training(config, show_progress=False)
    with pytest.raises(ConflictError, match="set output.name or output.overwrite=true"):
        run_training(config, show_progress=False)
    with pytest.raises(NotFoundError, match="nothing to resume"):
        run_training(tiny_train_config("output.name=other"), resume=True, show_progress=False)


def test_non_finite_loss_stops_and_keeps_checkpoint(tiny_train_config) -> None:
    config = tiny_train_config("method.name=full", "train.lr=1e30", "train.max_grad_norm=1e30", "train.save_steps=1",
                               "train.max_steps=6", "output.name=diverge")  # fmt: skip
    with pytest.raises(TrainingStopped, match=r"not finite.*last good checkpoint is step \d") as info:
        run_training(config, show_progress=False)
    assert "--resume" in str(info.value)
    assert _runs() == [".diverge.partial"]  # no finished run folder, the checkpoint is kept
    assert (get_settings().runs_dir / ".diverge.partial" / "checkpoint.pt").is_file()


def test_vanishing_index_in_metrics(tiny_train_config) -> None:
    run = run_training(tiny_train_config("train.max_steps=2"), show_progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    step = rows[0]
    assert {"loss", "lr", "tokens_per_s", "peak_mem_mb", "grad_norm", "layer_grad_norm"} <= set(step)
    assert set(step["layer_grad_norm"]) == {"layer_0", "layer_1"}
    assert step["vanishing_ratio"] > 0
    assert step["tiny_grad_share"] == 0.5  # LoRA A matrices get no gradient while B is still zero
    assert rows[-1]["final"] and rows[-1]["eval_loss"] > 0
    assert "finmed_train_vanishing_ratio" in (run / "metrics.prom").read_text()


def test_progressive_pilot_then_full(tiny_train_config) -> None:
    run = run_training(
        tiny_train_config("progressive.pilot_fraction=0.1", "progressive.gate.max=100", "output.name=prog"),
        show_progress=False,
    )
    record = json.loads((run / "progressive.json").read_text())
    pilot = json.loads((Path(record["pilot_dir"]) / "eval.json").read_text())
    assert record["passed"] and Path(record["pilot_dir"]).name == "prog-pilot"
    assert pilot["train_examples"] == 4 and json.loads((run / "eval.json").read_text())["train_examples"] == 43


def test_progressive_gate_blocks_full_run(tiny_train_config) -> None:
    with pytest.raises(GateFailed, match="above progressive.gate.max=0.01; full run not started"):
        run_training(
            tiny_train_config("progressive.pilot_fraction=0.1", "progressive.gate.max=0.01", "output.name=blocked"),
            show_progress=False,
        )
    assert _runs() == ["blocked-pilot"]
