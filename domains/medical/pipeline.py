"""The medical workflow steps the faces share (CLI, HTTP API, bootstrap): where things live, training a stage and
registering it, opening the drafting model of a hospital, drafting studies with priors and storing the drafts.

Model versions: `medical-stage1` (the stage-1 base, exported) and `medical-<hospital>` (each hospital's stage-2
adapter merged and exported), both at exports.RECOMMENDED_PRECISION when its measured drop against fp32 passes the
accuracy gate (else at fp32), lineage and the quant-report row in their metrics.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.db.tables import ModelVersion, User
from core.errors import NotFoundError, ValidationError
from domains.medical.drafting import Draft, InProcessEngine, draft_reports
from domains.medical.exports import RECOMMENDED_PRECISION, export_measured_folder, register
from domains.medical.ingest import Report

if TYPE_CHECKING:
    from core.models.measured import MeasuredExport

STAGE1_NAME = "medical-stage1"
EVAL_RECORDS = 16  # records the quantization drop of a registered export is measured on
_HOSPITAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def check_hospital(hospital: str) -> str:
    """A hospital name usable in model names and vector-store tenants.

    Raises:
        ValidationError: naming the bad value.
    """
    if not _HOSPITAL.match(hospital or ""):
        raise ValidationError(f"--hospital {hospital!r}: use 1-63 letters, digits, '_' or '-' (e.g. st_marys)")
    return hospital


def model_name(hospital: str) -> str:
    """The registry name of a hospital's drafting model."""
    return f"medical-{check_hospital(hospital).replace('_', '-')}"


def medical_dir(data_dir: Path) -> Path:
    """DATA_DIR/medical: runs, the stage-1 base, exports and demo files."""
    return Path(data_dir) / "medical"


def stage1_base(data_dir: Path) -> Path:
    """Where `finmed medical train --stage 1` leaves the stage-1 base folder."""
    return medical_dir(data_dir) / "stage1" / "stage1-base"


def register_stage1(
    session: Session, *, user: User, data_dir: Path, base_folder: Path, precision: str = RECOMMENDED_PRECISION
) -> ModelVersion:
    """Export the stage-1 base folder (measured on held-out vocabulary questions) and register it as the next
    `medical-stage1` version."""
    from domains.medical.training import vocabulary_records

    held_out = vocabulary_records(seed=1, per_source=3)[:EVAL_RECORDS]
    measured = export_measured_folder(medical_dir(data_dir) / "exports" / f"stage1-{precision}",
                                      eval_records=held_out, model=str(base_folder), precision=precision)  # fmt: skip
    return register(session, user=user, name=STAGE1_NAME, folder=measured.path, base_model=str(base_folder),
                    source=base_folder, precision=measured.precision, extra=_measured(measured))  # fmt: skip


def register_hospital(
    session: Session,
    *,
    user: User,
    data_dir: Path,
    hospital: str,
    run_dir: Path,
    base: str,
    reports: list[Report],
    precision: str = RECOMMENDED_PRECISION,
) -> ModelVersion:
    """Export a hospital's stage-2 run (merged), measured on up to EVAL_RECORDS of its `reports`, and register it as
    the next `medical-<hospital>` version."""
    from domains.medical.training import stage2_records

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    sample = [r for r in reports if r.trainable][:EVAL_RECORDS]
    if not sample:
        raise ValidationError(f"hospital {hospital}: no report with findings and an impression to measure it on")
    measured = export_measured_folder(medical_dir(data_dir) / "exports" / f"{hospital}-{precision}-{stamp}",
                                      eval_records=stage2_records(sample, hospital=hospital), run_dir=run_dir,
                                      precision=precision)  # fmt: skip
    return register(session, user=user, name=model_name(hospital), folder=measured.path, base_model=base,
                    source=run_dir, precision=measured.precision,
                    extra={"hospital": hospital, **_measured(measured)})  # fmt: skip


def _measured(measured: MeasuredExport) -> dict[str, Any]:
    """The registry metrics of a MeasuredExport: its quant-report row and the note on the precision kept."""
    return {**measured.metrics, "export_note": measured.note}


@dataclass
class DraftingModel:
    """The model a hospital's drafts come from: the engine plus the identity stored with each draft."""

    engine: Any
    name: str
    version: int | None
    precision: str


def open_model(session: Session, *, user: User, hospital: str, folder: Path | None = None) -> DraftingModel:
    """An in-process engine on `folder`, else on the hospital's registered version (promoted, else the latest).

    Raises:
        NotFoundError: no version registered for the hospital (the message says how to train one).
    """
    if folder is not None:
        return DraftingModel(InProcessEngine(folder, name=model_name(hospital)), f"folder:{Path(folder).name}", None,
                             "")  # fmt: skip
    from core.models.registry import get_version

    name = model_name(hospital)
    try:
        version = get_version(session, user=user, name=name)
    except NotFoundError:
        raise NotFoundError(
            f"no model registered for hospital {hospital!r} ({name}): run "
            f"`finmed medical train --stage 2 --reports DIR --hospital {hospital} --register --as USER`"
        ) from None
    engine = InProcessEngine(Path(version.path), name=name)
    return DraftingModel(engine, name, version.version, version.precision)


def priors_for(hospital: str, settings: Any, k_similar: int) -> Any:
    """A similar.PriorReports for the hospital when its reports are indexed and k_similar > 0, else None."""
    if k_similar <= 0:
        return None
    from core.retrieval.embeddings import load_embedder
    from core.retrieval.store import open_store
    from domains.medical.similar import PriorReports

    store = open_store(settings)
    if not PriorReports.available(store, hospital):
        return None
    return PriorReports(store, load_embedder(settings), hospital=hospital)


def similar_priors(draft: Any, settings: Any, k: int = 3) -> list[Any]:
    """Up to `k` prior reports of the draft's hospital most similar to its study (prompts.Prior, most similar
    first; [] when the hospital has no indexed reports). For the study view: what was signed for similar findings."""
    priors = priors_for(draft.hospital, settings, k)
    if priors is None:
        return []
    return priors.similar(Report(draft.study_id, draft.hospital, dict(draft.study)), k)


def draft_and_store(
    session: Session | None,
    *,
    user: User | None,
    model: DraftingModel,
    reports: list[Report],
    hospital: str,
    similar: Any = None,
    k_similar: int = 2,
    concurrency: int = 1,
    on_done: Any = None,
) -> tuple[list[Draft], dict[str, int]]:
    """Draft every study; with a session and user, store each draft and route it to the worklist.

    Returns:
        (drafts in order, {"stored": n, "queued": m}).
    """
    from domains.medical.store import store_drafts

    drafts = draft_reports(model.engine, reports, similar=similar, k_similar=k_similar, concurrency=concurrency,
                           on_done=on_done)  # fmt: skip
    counts = {"stored": 0, "queued": 0}
    if session is not None and user is not None:
        rows = store_drafts(session, user=user, drafts=drafts, hospital=hospital, model_name=model.name,
                            model_version=model.version, precision=model.precision)  # fmt: skip
        counts = {"stored": len(rows), "queued": sum(r.review_item_id is not None for r in rows)}
    return drafts, counts
