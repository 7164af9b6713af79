"""Store scored transactions as finance assessments (one row per scored transaction, in the caller's transaction)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from domains.finance.tables import Assessment
from domains.finance.versions import Versions


def opt(value: Any) -> Any:
    """None for a missing cell (None, pd.NA, NaN), else the value."""
    return None if value is None or value is pd.NA or value != value else value  # noqa: PLR0124


def store_assessments(
    session: Session,
    *,
    scored: pd.DataFrame,
    batch_id: str,
    versions: Versions | None = None,
    model_version: str | None = None,
) -> int:
    """Insert one Assessment per row of `scored` (pipeline.ASSESSMENT_COLUMNS); returns the number stored.

    Args:
        versions: what produced the rows (numeric, LLM, calibration); `model_version` is its label unless given.
    """
    label = model_version or (versions.label() if versions is not None else "unknown")
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
                model_version=label,
                numeric_version=versions.numeric if versions is not None else None,
                llm_version=versions.llm if versions is not None and opt(rec["llm_answer"]) is not None else None,
                calibration_version=versions.calibration if versions is not None else None,
                numeric_score=float(rec["numeric_score"]),
                numeric_level=int(rec["numeric_level"]),
                llm_level=None if llm_level is None else int(llm_level),
                llm_score=None if llm_score is None else float(llm_score),
                parse_ok=None if parse_ok is None else bool(parse_ok),
                llm_answer=opt(rec["llm_answer"]),
                prompt=opt(rec.get("prompt")),
                fused_score=float(rec["fused_score"]),
                risk_level=int(rec["risk_level"]),
                disagreement=None if disagreement is None else int(disagreement),
                adjudicated=bool(rec["adjudicated"]),
                audit_sample=bool(rec["audit_sample"]),
                reasons=[r for r in str(rec["reasons"]).split(",") if r],
                odd_fields=[f for f in str(opt(rec.get("odd_fields")) or "").split(",") if f],
            )
        )
    session.add_all(rows)
    session.flush()
    return len(rows)
