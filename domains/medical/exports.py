"""Export medical runs and bases to ONNX Runtime GenAI folders and register them as model versions with lineage.

RECOMMENDED_PRECISION is the precision drafts are served at: int8 (MatMulNBits 8-bit). int4 RTN lost the answer
format of the finance adapter on the default model (bench/results/finance.md, run 3: int8 kept it), so medical
does not default to it; bench/medical.py measures int4 latency beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.db.tables import ModelVersion, User
from domains.medical.training import read_lineage

if TYPE_CHECKING:
    from core.models.measured import MeasuredExport

RECOMMENDED_PRECISION = "int8"


def export_folder(
    out_dir: Path, *, run_dir: Path | None = None, model: str | None = None, precision: str = RECOMMENDED_PRECISION
) -> Path:
    """Export a run (adapter merged) or a plain model/base folder to `out_dir` (replaced if it exists)."""
    from core.quantize.export import export_model
    from core.quantize.precisions import ExportOptions

    result = export_model(
        options=ExportOptions(precision=precision), out_dir=Path(out_dir), run_dir=run_dir, model=model, overwrite=True
    )
    return result.path


def export_measured_folder(
    out_dir: Path,
    *,
    eval_records: list[dict[str, Any]],
    run_dir: Path | None = None,
    model: str | None = None,
    precision: str = RECOMMENDED_PRECISION,
) -> MeasuredExport:
    """Export `precision` beside fp32 into `out_dir` (a quant-report folder), measured on `eval_records` (chat
    records), keeping `precision` when it passes the accuracy gate, else fp32: a core.models.measured.MeasuredExport.

    The records sit beside the folder as <out_dir>.eval.jsonl. The drop is a quantization drop against fp32, so
    records the model was trained on measure it fairly.
    """
    from core.models.measured import export_measured
    from domains.medical.training import write_jsonl

    eval_path = Path(out_dir).with_name(Path(out_dir).name + ".eval.jsonl")
    write_jsonl(eval_records, eval_path)
    return export_measured(eval_path=eval_path, out_dir=Path(out_dir), precision=precision, run_dir=run_dir,
                           model=model)  # fmt: skip


def register(
    session: Session,
    *,
    user: User,
    name: str,
    folder: Path,
    base_model: str,
    source: Path,
    precision: str = RECOMMENDED_PRECISION,
    extra: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register an exported folder as the next version of `name`, its metrics carrying the source's lineage (and,
    in `extra`, its quant-report row)."""
    from core.models.registry import register_version

    metrics = {"lineage": read_lineage(source), "source": str(source), **(extra or {})}
    return register_version(
        session, user=user, name=name, base_model=base_model, method="lora", precision=precision, path=folder,
        metrics=metrics,
    )  # fmt: skip
