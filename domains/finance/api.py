"""HTTP face of finance scoring: POST /v1/finance/score (numeric screen; LLM adjudication when a budget is given).

Mounted by the model server (core.serving.app) behind its API keys. With `llm_budget` > 0 the request names a model
the server serves (the finance adapter exported with `finmed export`), and that model adjudicates through
`ServingState` (the server's batcher, limits and metrics; answers constrained to the risk format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from core.errors import FinmedError
from domains.finance.ingest import CANONICAL

CanonicalField = Literal[CANONICAL]  # type: ignore[valid-type]  # so the OpenAPI document lists the names


class ScoreRequest(BaseModel):
    """A batch of transactions with canonical field names (or `mapping` from canonical field to the given key)."""

    transactions: list[dict[str, Any]] = Field(..., min_length=1, description="Transaction objects.")
    mapping: dict[CanonicalField, str] = Field(default_factory=dict, description="Canonical field -> given key.")
    llm_budget: int = Field(0, ge=0, description="Most transactions the LLM adjudicates.")
    model: str | None = Field(None, description="Served model that adjudicates (needed when llm_budget > 0).")


def make_router(numeric_model: Path | None = None, llm: Any = None) -> APIRouter:
    """The finance router; `numeric_model` defaults to the file `finmed finance fit` writes, `llm` to none."""
    router = APIRouter(prefix="/v1/finance", tags=["finance"])
    served: dict[str, Any] = {}  # OnnxLLM on the server's ServingState per served model name, built on first use

    def served_llm(http: Request, name: str | None) -> Any:
        if name is None:
            raise HTTPException(422, "llm_budget > 0 needs `model`: the name of a served finance model")
        state = getattr(http.app.state, "serving", None)
        workers = getattr(state, "workers", {}) or {}
        if name not in workers:
            raise HTTPException(404, f"model {name!r} is not served here; available: {', '.join(sorted(workers))}")
        if name not in served:
            from domains.finance.llm import OnnxLLM

            served[name] = OnnxLLM(workers[name].model.folder, serving=state, model=name)
        return served[name]

    @router.post("/score")
    def score(request: ScoreRequest, http: Request) -> dict[str, Any]:
        import pandas as pd

        from domains.finance.cli import default_numeric_path
        from domains.finance.ingest import apply_mapping, validate
        from domains.finance.numeric import NumericModel
        from domains.finance.pipeline import CascadePolicy, score_frame

        try:
            unknown = [name for name in request.mapping if name not in CANONICAL]
            if unknown:
                raise HTTPException(422, f"mapping: unknown field(s) {', '.join(unknown)}")
            numeric = NumericModel.load(numeric_model or default_numeric_path())
            data = validate(apply_mapping(pd.DataFrame(request.transactions), request.mapping, source="request"))
            bad = [{"row": b.row, "reason": b.reason} for b in data.bad]
            if data.frame.empty:
                return {"assessments": [], "bad_rows": bad}
            adjudicator = llm
            if request.llm_budget > 0 and adjudicator is None:
                adjudicator = served_llm(http, request.model)
            policy = CascadePolicy(budget=request.llm_budget if adjudicator is not None else 0, k_examples=0)
            extra = [c for c in numeric.columns if c in data.extra_features]
            scored = score_frame(data.frame, numeric, llm=adjudicator, policy=policy, extra=extra)
        except FinmedError as exc:
            raise HTTPException(exc.http_status, str(exc)) from None
        scored = scored.astype(object).where(scored.notna(), None)
        return {"assessments": scored.to_dict("records"), "bad_rows": bad}

    return router
