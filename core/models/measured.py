"""An export measured before it is registered: the recommended precision beside its fp32 reference, in one
quant-report run, so the version registers with its report line and the server's accuracy gate can judge it.

Used where finmed itself registers models (the bootstrap of `finmed up` / `finmed demo`, `finmed medical train
--register`): a version registered without a measured drop is never served (core.models.registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.models.registry import DEFAULT_MAX_DROP_PTS, metrics_from_report
from core.quantize.precisions import ExportOptions
from core.quantize.report import quant_report, slug

REFERENCE = "fp32"


@dataclass(frozen=True)
class MeasuredExport:
    """The export to register and its figures.

    Attributes:
        path: the kept export folder.
        precision: its precision label (the recommended one, or fp32 when that failed the gate).
        metrics: its quant-report row for the registry (task_metric, task_drop_pts, size_mb, ..., report).
        note: one line for the user: what was measured and which precision is kept.
        base_model: the base the export was built from (as the report records it).
        method: the run's fine-tuning method, or "none" for a plain model.
    """

    path: Path
    precision: str
    metrics: dict[str, Any]
    note: str
    base_model: str
    method: str


def export_measured(
    *,
    eval_path: Path,
    out_dir: Path,
    precision: str,
    run_dir: Path | None = None,
    model: str | None = None,
    max_drop_pts: float = DEFAULT_MAX_DROP_PTS,
    progress: Callable[[str], None] | None = None,
) -> MeasuredExport:
    """Export `precision` and fp32 from a run or a model folder, measure both on `eval_path`, keep one.

    The recommended `precision` is kept when its measured drop is within `max_drop_pts`; else the fp32 reference
    is kept, and the note says by how much the other fell short. The folder not kept is removed (its figures stay
    in out_dir/report.json). With precision fp32 only the reference is exported and measured.

    Raises:
        ValidationError, NotFoundError: as core.quantize.report.quant_report (bad eval file, missing run).
    """
    wanted = ExportOptions(precision).label()
    labels = [REFERENCE] if wanted == REFERENCE else [REFERENCE, wanted]
    report = quant_report(
        eval_path=Path(eval_path),
        out_dir=Path(out_dir),
        run_dir=run_dir,
        model=model,
        precisions=list(labels),
        overwrite=True,
        progress=progress,
    )
    rows = report["precisions"]
    drop = float(rows[wanted]["task_drop_pts"])
    chosen = wanted if drop <= max_drop_pts else REFERENCE
    metric = report["metric"]
    if chosen == wanted:
        value = rows[wanted]["task_metric"]
        note = f"{wanted} kept: {metric} {value:.3f}, {drop:+.2f} pts vs fp32 (gate {max_drop_pts:.2f})"
    else:
        note = (
            f"fp32 kept: {wanted} lost {drop:.2f} pts of {metric} vs fp32 on {report['n_eval']} held-out records, "
            f"over the gate of {max_drop_pts:.2f}"
        )
    for label in labels:
        if label != chosen:
            _remove_export(Path(out_dir), label)
    path = Path(out_dir) / "models" / slug(chosen)
    metrics = metrics_from_report(Path(out_dir) / "report.json", chosen)
    return MeasuredExport(path, chosen, metrics, note, str(report["model"]), str(report["method"]))


def _remove_export(out_dir: Path, label: str) -> None:
    """Delete one precision's export folder of a report; its row in report.json keeps the figures, path None."""
    import json
    import shutil

    from core.atomic import atomic_file

    shutil.rmtree(out_dir / "models" / slug(label), ignore_errors=True)
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text())
    report["precisions"][label]["path"] = None
    with atomic_file(report_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=float))
