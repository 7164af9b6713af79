"""The finance assessments table: every scored transaction with its three variants and review routing fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class Assessment(Base):
    """One transaction's risk assessment.

    `risk_level` is the fused level; `llm_level` is None where the LLM did not adjudicate or its answer failed to
    parse (`parse_ok` False routes to review); `llm_score` is its expected level / 5, the value fusion uses;
    `disagreement` = |llm_level - numeric_level|. `prompt` is the exact text sent to the LLM (template, examples,
    language), None where it was not called; `numeric_version`, `llm_version` and `calibration_version` say what
    produced the row (versions.Versions), `odd_fields` which optional fields ingest flagged.
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
    prompt: Mapped[str | None] = mapped_column(Text)
    numeric_version: Mapped[str | None] = mapped_column(String(40))
    llm_version: Mapped[str | None] = mapped_column(String(200))
    calibration_version: Mapped[str | None] = mapped_column(String(40))
    odd_fields: Mapped[list[Any]] = mapped_column(default=list)
    fused_score: Mapped[float]
    risk_level: Mapped[int]
    disagreement: Mapped[int | None]
    adjudicated: Mapped[bool] = mapped_column(default=False)
    audit_sample: Mapped[bool] = mapped_column(default=False)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
