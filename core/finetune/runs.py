"""Training run folders for the operations page: which runs exist under the data folder, and their step metrics
(metrics.jsonl, written by core.monitoring.training_metrics) and eval report (eval.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.auth.roles import require_role
from core.db.tables import User
from core.errors import NotFoundError, ValidationError

ENGINEER_ROLES = ("engineer",)  # admin is always allowed
MAX_DEPTH = 4
SKIP = {"models", "lancedb", "exports", ".git"}


@dataclass(frozen=True)
class RunSummary:
    """One run folder: where it is, how far it got, its last loss and eval figures."""

    path: Path
    name: str
    steps: int
    last_loss: float | None
    eval: dict[str, Any]
    modified: datetime


def folders_with(root: Path, filename: str) -> list[Path]:
    """Folders under `root` (up to MAX_DEPTH deep, skipping model and vector folders) that hold `filename`."""
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if (folder / filename).is_file():
            found.append(folder)
        if depth >= MAX_DEPTH:
            return
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name not in SKIP and not child.name.startswith("."):
                walk(child, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return found


def read_metrics(*, user: User, run_dir: Path) -> list[dict[str, Any]]:
    """Every step row of a run's metrics.jsonl.

    Raises:
        NotFoundError: the folder has no metrics.jsonl.
        ValidationError: a line that is not JSON, naming the file and line number.
    """
    require_role(user, *ENGINEER_ROLES, action="read training metrics")
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise NotFoundError(f"{run_dir} has no metrics.jsonl: is it a `finmed train` run folder?")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path} line {number} is not JSON: {exc.msg}") from None
    return rows


def list_runs(*, user: User, root: Path) -> list[RunSummary]:
    """Run folders (those with metrics.jsonl) under `root`, newest first; engineers and admins only."""
    require_role(user, *ENGINEER_ROLES, action="list training runs")
    runs = []
    for folder in folders_with(Path(root), "metrics.jsonl"):
        try:
            rows = read_metrics(user=user, run_dir=folder)
        except ValidationError:
            rows = []
        losses = [r["loss"] for r in rows if isinstance(r.get("loss"), int | float)]
        eval_path = folder / "eval.json"
        try:
            eval_report = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
        except json.JSONDecodeError:
            eval_report = {}
        stamp = datetime.fromtimestamp((folder / "metrics.jsonl").stat().st_mtime, UTC)
        runs.append(
            RunSummary(
                path=folder,
                name=str(folder.relative_to(root)),
                steps=max((int(r.get("step", 0)) for r in rows), default=0),
                last_loss=losses[-1] if losses else None,
                eval=eval_report if isinstance(eval_report, dict) else {},
                modified=stamp,
            )
        )
    return sorted(runs, key=lambda r: r.modified, reverse=True)
