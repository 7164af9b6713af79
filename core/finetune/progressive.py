"""Progressive fine-tuning: a pilot on a small share of the data first, and the full run only if a gate passes.

The pilot is an ordinary run named `<name>-pilot` (its own folder, metrics and eval.json); the full run's
folder gets `progressive.json` with the pilot's folder, metric, value and gate. When the gate fails the pilot
folder stays for inspection and no full run is started.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import FinmedError
from core.finetune.config import TrainConfig
from core.finetune.recipe import Recipe, StepHook, resolve_paths, run_recipe


class GateFailed(FinmedError):
    """The pilot's metric did not pass the gate, so the full run was not started."""


def pilot_config(config: TrainConfig) -> TrainConfig:
    """The pilot's config: same everything, `pilot_fraction` of the training split, its own run name."""
    assert config.progressive is not None
    pilot = config.model_copy(deep=True)
    pilot.progressive = None
    pilot.dataset.fraction = config.progressive.pilot_fraction
    pilot.output.name = f"{config.run_name()}-pilot"
    return pilot


def run_progressive(config: TrainConfig, *, resume: bool, show_progress: bool, on_step: StepHook | None) -> Path:
    """Run the pilot (or reuse a finished one), check the gate, then run the full data.

    Raises:
        GateFailed: the pilot's metric is above `gate.max` (message names both numbers and the pilot folder).
    """
    assert config.progressive is not None
    gate = config.progressive.gate
    pilot = pilot_config(config)
    pilot_dir = Recipe(pilot, show_progress=False).final_dir
    if not (pilot_dir / "eval.json").is_file():
        pilot_dir = run_recipe(
            resolve_paths(pilot), resume=resume and Recipe(pilot).work_dir.exists(), show_progress=show_progress
        )
    value = json.loads((pilot_dir / "eval.json").read_text()).get(gate.metric)
    passed = value is not None and value <= gate.max
    if not passed:
        raise GateFailed(
            f"pilot {gate.metric}={value} is above progressive.gate.max={gate.max}; full run not started; "
            f"pilot recorded at {pilot_dir}"
        )
    full = config.model_copy(deep=True)
    full.progressive = None
    full.output.name = config.run_name()
    run_dir = run_recipe(resolve_paths(full), resume=resume, show_progress=show_progress, on_step=on_step)
    record = {"pilot_dir": str(pilot_dir), "metric": gate.metric, "value": value, "max": gate.max, "passed": True}
    record["pilot_fraction"] = config.progressive.pilot_fraction
    (run_dir / "progressive.json").write_text(json.dumps(record, indent=2))
    return run_dir
