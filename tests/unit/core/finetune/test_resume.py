"""A killed or interrupted run resumes from its checkpoint and ends with the same loss curve as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.finetune.recipe import TrainingInterrupted
from core.finetune.run import run_training

# 40 training records, batch 4: 10 steps per epoch; 12 steps cross an epoch boundary. LoRA dropout is on (0.1).
STEPS = ("train.epochs=2", "train.max_steps=12", "train.save_steps=4", "dataset.limit=44")


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    return [r["loss"] for r in rows if "loss" in r]


class Killed(Exception):
    """Stands in for the process dying (no checkpoint is written on the way out)."""


def test_resume_after_kill_matches_uninterrupted(tiny_train_config) -> None:
    reference = _losses(run_training(tiny_train_config(*STEPS, "output.name=straight"), show_progress=False))

    def die_at_11(step: int, _row: dict) -> None:
        if step == 11:
            raise Killed

    config = tiny_train_config(*STEPS, "output.name=killed")
    with pytest.raises(Killed):
        run_training(config, show_progress=False, on_step=die_at_11)
    resumed = run_training(config, resume=True, show_progress=False)  # continues from the step-8 checkpoint
    assert _losses(resumed) == pytest.approx(reference, rel=1e-5, abs=1e-6)
    assert not (resumed.parent / ".killed.partial").exists()
    assert not (resumed / "checkpoint.pt").exists()


def test_ctrl_c_saves_checkpoint_and_resumes(tiny_train_config) -> None:
    def ctrl_c_at_5(step: int, _row: dict) -> None:
        if step == 5:
            raise KeyboardInterrupt

    config = tiny_train_config(*STEPS, "train.fgm_epsilon=0.5", "output.name=ctrlc")
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5: checkpoint saved"):
        run_training(config, show_progress=False, on_step=ctrl_c_at_5)
    reference = _losses(run_training(tiny_train_config(*STEPS, "train.fgm_epsilon=0.5"), show_progress=False))
    assert _losses(run_training(config, resume=True, show_progress=False)) == pytest.approx(reference, rel=1e-5)
