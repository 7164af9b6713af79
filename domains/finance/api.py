"""HTTP face of finance scoring: POST /v1/finance/score, a thin face over domains/finance/service.py.

Mounted by the model server (core.serving.app) behind its API keys. The learned fusion decides whether the LLM
runs (as in the CLI and the page); `llm_budget` forces it. The adjudicating LLM is a model this server serves
(the finance adapter exported with `finmed export`), named by `model`. With `store`, the assessments are stored and
routed to review, recorded as `user` (an analyst or engineer account: the API key says which client calls, the
user says who the outputs belong to).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from core.errors import FinmedError
from core.serving.openapi_errors import required_when_true
from domains.finance.ingest import CANONICAL

CanonicalField = Literal[CANONICAL]  # type: ignore[valid-type]  # so the OpenAPI document lists the names


class ScoreRequest(BaseModel):
    """A batch of transactions with canonical field names (or `mapping` from canonical field to the given key)."""

    model_config = ConfigDict(json_schema_extra=required_when_true("store", "user"))

    transactions: list[dict[str, Any]] = Field(..., min_length=1, description="Transaction objects.")
    mapping: dict[CanonicalField, str] = Field(default_factory=dict, description="Canonical field -> given key.")
    llm_budget: int | None = Field(
        None, ge=0, description="Most transactions the LLM adjudicates; omitted: the learned fusion decides."
    )
    model: str | None = Field(None, description="Served model that adjudicates (needed when the LLM runs).")
    store: bool = Field(False, description="Store the assessments and route those needing a person to review.")
    user: str | None = Field(
        None, min_length=1, description="With store: the analyst or engineer the outputs are recorded as."
    )


def served_llm_factory(http: Request, name: str | None, cache: dict[str, Any]) -> Any:
    """How this route obtains its LLM: a factory (called only when the LLM stage runs) for the served model `name`.

    The one place the API builds an LLM, kept apart so the serving layer's client can replace it.
    """

    def make() -> Any:
        if name is None:
            raise HTTPException(422, "the LLM stage needs `model`: the name of a served finance model")
        state = getattr(http.app.state, "serving", None)
        workers = getattr(state, "workers", {}) or {}
        if name not in workers:
            raise HTTPException(404, f"model {name!r} is not served here; available: {', '.join(sorted(workers))}")
        if name not in cache:
            from domains.finance.llm import OnnxLLM

            cache[name] = OnnxLLM(workers[name].model.folder, serving=state, model=name)
        return cache[name]

    return make if name is not None else None


def make_router(numeric_model: Path | None = None, llm: Any = None) -> APIRouter:
    """The finance router; `numeric_model` defaults to the file `finmed finance fit` writes, `llm` to the served
    model a request names."""
    router = APIRouter(prefix="/v1/finance", tags=["finance"])
    cache: dict[str, Any] = {}  # OnnxLLM per served model name, built on first use

    @router.post("/score")
    def score(request: ScoreRequest, http: Request) -> dict[str, Any]:
        import pandas as pd

        from domains.finance.service import score_batch, store_and_route

        args = {
            "frame": pd.DataFrame(request.transactions),
            "mapping": request.mapping,
            "numeric": numeric_model,
            "llm": llm if llm is not None else served_llm_factory(http, request.model, cache),
            "llm_budget": request.llm_budget,
            "source": "request",
        }
        try:
            if request.store:
                if not request.user:
                    raise HTTPException(422, "store: true needs `user`, the analyst the outputs are recorded as")
                from core.auth.users import get_user
                from core.db.engine import get_engine, session_scope

                # the model server's own database; a router mounted on its own uses the configured one
                engine = getattr(getattr(http.app.state, "serving", None), "engine", None) or get_engine()
                with session_scope(engine) as session:
                    user = get_user(session, request.user)
                    result = score_batch(session, user=user, **args)
                    stored = store_and_route(session, user=user, result=result)
            else:
                result, stored = score_batch(None, user=None, **args), None
        except FinmedError as exc:
            raise HTTPException(exc.http_status, str(exc)) from None
        return {
            "assessments": result.records(),
            "bad_rows": [{"row": b.row, "reason": b.reason} for b in result.rejected],
            "odd_fields": [
                {"field": o.field, "problem": o.problem, "count": o.count, "examples": o.examples} for o in result.odd
            ],
            "rows": result.counts(),
            "llm": {
                "note": result.plan.note,
                "forced": result.plan.forced,
                "calls": result.llm_calls,
                "seconds": result.llm_seconds,
            },
            "versions": {
                "numeric": result.versions.numeric,
                "llm": result.versions.llm,
                "calibration": result.versions.calibration,
            },
            "stored": stored,
        }

    return router
