"""The one entry point of a fine-tune: a plain recipe run, or a progressive pilot + full run when the config asks.

It sits above core.finetune.recipe and core.finetune.progressive so that neither imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from core.finetune.config import TrainConfig
from core.finetune.progressive import run_progressive
from core.finetune.recipe import StepHook, resolve_paths, run_recipe


def run_training(
    config: TrainConfig, *, resume: bool = False, show_progress: bool = True, on_step: StepHook | None = None
) -> Path:
    """Run one fine-tune (or a progressive pilot + full run) and return the finished run folder.

    Raises:
        ValidationError / NotFoundError / ConflictError: bad config, data or base (no folder is created).
        TrainingStopped: non-finite loss or gradients (the last good checkpoint is kept).
        TrainingInterrupted: Ctrl-C (a checkpoint was saved).
        GateFailed: a progressive run's pilot missed its gate (the full run is not started).
    """
    config = resolve_paths(config)
    if config.progressive is not None:
        return run_progressive(config, resume=resume, show_progress=show_progress, on_step=on_step)
    return run_recipe(config, resume=resume, show_progress=show_progress, on_step=on_step)
