"""Store scored transactions as finance assessments (one row per scored transaction, in the caller's transaction)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from domains.finance.tables import Assessment


def opt(value: Any) -> Any:
    """None for a missing cell (None, pd.NA, NaN), else the value."""
    return None if value is None or value is pd.NA or value != value else value  # noqa: PLR0124


def store_assessments(session: Session, *, scored: pd.DataFrame, batch_id: str, model_version: str) -> int:
    """Insert one Assessment per row of `scored` (pipeline.ASSESSMENT_COLUMNS); returns the number stored."""

    rows = []
    for rec in scored.to_dict("records"):
        llm_level = opt(rec["llm_level"])
        llm_score = opt(rec.get("llm_score"))
        disagreement = opt(rec["disagreement"])
        parse_ok = opt(rec["parse_ok"])
        rows.append(
            Assessment(
                batch_id=batch_id,
                transaction_id=str(rec["transaction_id"]),
                account_id=str(rec["account_id"]),
                model_version=model_version,
                numeric_score=float(rec["numeric_score"]),
                numeric_level=int(rec["numeric_level"]),
                llm_level=None if llm_level is None else int(llm_level),
                llm_score=None if llm_score is None else float(llm_score),
                parse_ok=None if parse_ok is None else bool(parse_ok),
                llm_answer=opt(rec["llm_answer"]),
                fused_score=float(rec["fused_score"]),
                risk_level=int(rec["risk_level"]),
                disagreement=None if disagreement is None else int(disagreement),
                adjudicated=bool(rec["adjudicated"]),
                audit_sample=bool(rec["audit_sample"]),
                reasons=[r for r in str(rec["reasons"]).split(",") if r],
            )
        )
    session.add_all(rows)
    session.flush()
    return len(rows)
