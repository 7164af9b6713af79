"""The finance assessments table: every scored transaction with its three variants and review routing fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db.base import Base, utcnow


class Assessment(Base):
    """One transaction's risk assessment.

    `risk_level` is the fused level; `llm_level` is None where the LLM did not adjudicate or its answer failed to
    parse (`parse_ok` False routes to review); `llm_score` is its expected level / 5, the value fusion uses;
    `disagreement` = |llm_level - numeric_level|.
    """

    __tablename__ = "finance_assessments"
    __table_args__ = (
        CheckConstraint("risk_level BETWEEN 0 AND 5", name="risk_level"),
        CheckConstraint("numeric_level BETWEEN 0 AND 5", name="numeric_level"),
        Index(None, "account_id", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    transaction_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(200))
    numeric_score: Mapped[float]
    numeric_level: Mapped[int]
    llm_level: Mapped[int | None]
    llm_score: Mapped[float | None]
    parse_ok: Mapped[bool | None]
    llm_answer: Mapped[str | None] = mapped_column(Text)
    fused_score: Mapped[float]
    risk_level: Mapped[int]
    disagreement: Mapped[int | None]
    adjudicated: Mapped[bool] = mapped_column(default=False)
    audit_sample: Mapped[bool] = mapped_column(default=False)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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
