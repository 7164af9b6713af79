"""HTTP face of drafting: POST /v1/medical/draft, through the model server's own loaded models.

Mounted by the model server (core.serving.app) behind its API keys. Generation goes through the server's
ServingState.generate (batcher, limits, metrics); the model is the hospital's served version (`medical-<hospital>`)
unless `model` names another. With `store`, drafts are stored and routed to the radiologist worklist as `as_user`
(a radiologist, engineer or admin; the API key authorises the call, the user's role is checked by the service).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from core.errors import FinmedError
from core.serving.openapi_errors import required_when_true
from domains.medical.ingest import CANONICAL

CanonicalField = Literal[CANONICAL]  # type: ignore[valid-type]  # so the OpenAPI document lists the names


class DraftRequest(BaseModel):
    """Studies of one hospital: each with `text` (a whole report) or section fields (indication, findings, ...).

    A study that cannot be drafted (no text and no section, or no findings) is answered in `bad_rows` with its
    reason; the others are drafted.
    """

    model_config = ConfigDict(json_schema_extra=required_when_true("store", "as_user"))

    studies: list[dict[str, Any]] = Field(..., min_length=1, max_length=256, description="Study objects.")
    hospital: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$",
        description="The hospital: its adapter and its prior reports are used.",
    )
    model: str | None = Field(None, description="Served model version (default medical-<hospital>).")
    mapping: dict[CanonicalField, str] = Field(
        default_factory=dict, description="Canonical field -> key in the objects."
    )
    k_similar: int = Field(0, ge=0, le=8, description="Similar prior reports per prompt (when indexed).")
    store: bool = Field(False, description="Store drafts and route them to the radiologist worklist.")
    as_user: str | None = Field(None, min_length=1, description="With store: the user drafts are recorded as.")


def make_router() -> APIRouter:
    """The medical router."""
    router = APIRouter(prefix="/v1/medical", tags=["medical"])

    @router.post("/draft")
    async def draft(request: DraftRequest, http: Request) -> dict[str, Any]:
        from core.settings import get_settings
        from domains.medical import pipeline
        from domains.medical.drafting import ServedEngine, adraft

        state = http.app.state.serving
        try:
            hospital = pipeline.check_hospital(request.hospital)
            if request.store and not request.as_user:
                raise HTTPException(422, "store needs as_user: the user the drafts are recorded as")
            reports, bad_rows = _draftable(request, hospital)
            name = request.model or pipeline.model_name(hospital)
            engine = ServedEngine(state, name)
            drafts: list[Any] = []
            if reports:
                similar = await asyncio.to_thread(pipeline.priors_for, hospital, get_settings(), request.k_similar)
                priors = [similar.similar(r, request.k_similar) if similar else [] for r in reports]
                drafts = await adraft(engine, reports, priors, concurrency=8)
            stored = await asyncio.to_thread(_store, state, request, drafts, name) if request.store and drafts else None
        except FinmedError as exc:
            raise HTTPException(exc.http_status, str(exc)) from None
        return {
            "model": name,
            "drafts": [
                {
                    "study": d.report.report_id,
                    "draft": d.text,
                    "labels": d.labels,
                    "latency_ms": round(d.latency_ms, 1),
                    "priors": d.priors,
                    "draft_id": stored[i] if stored else None,
                }
                for i, d in enumerate(drafts)
            ],  # fmt: skip
            "bad_rows": bad_rows,
        }

    return router


def _draftable(request: DraftRequest, hospital: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """The studies that can be drafted, and each other one as {row, study, reason} (none is dropped silently)."""
    from domains.medical.ingest import report_from_row

    reports, bad = [], []
    for i, study in enumerate(request.studies):
        where = f"studies[{i}]"
        try:
            report = report_from_row(study, request.mapping, where=where, hospital=hospital)
        except FinmedError as exc:
            bad.append({"row": i, "study": None, "reason": str(exc)})
            continue
        if not report.draftable:
            bad.append(
                {"row": i, "study": report.report_id, "reason": f"{where}: the study has no findings to draft from"}
            )
        else:
            reports.append(report)
    return reports, bad


def _store(state: Any, request: DraftRequest, drafts: list[Any], name: str) -> list[int]:
    from core.auth.users import get_user
    from core.db.engine import session_scope
    from core.errors import DatabaseError
    from domains.medical.store import store_drafts

    if state.engine is None:
        raise DatabaseError("store=true needs the server's database; none is configured")
    with session_scope(state.engine) as session:
        rows = store_drafts(session, user=get_user(session, str(request.as_user)), drafts=drafts,
                            hospital=request.hospital, model_name=name)  # fmt: skip
        return [r.id for r in rows]
