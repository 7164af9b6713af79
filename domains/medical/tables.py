"""The medical tables: drafted impressions, signed reports (immutable) and their addenda (immutable, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.append_only import append_only
from core.db.base import Base, utcnow

DRAFT_STATES = ("drafted", "signed", "rejected")


class MedicalDraft(Base):
    """One drafted impression: the study (PHI-masked), the prompt exactly as sent, the model, latency, review link.

    `state` moves drafted -> signed | rejected; the signed text lives in MedicalSignedReport, never here.
    """

    __tablename__ = "medical_drafts"
    __table_args__ = (
        CheckConstraint("state IN ('drafted', 'signed', 'rejected')", name="state"),
        Index(None, "hospital", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[str] = mapped_column(String(128))
    hospital: Mapped[str] = mapped_column(String(64))
    study: Mapped[dict[str, Any]]
    prompt: Mapped[str] = mapped_column(Text)
    draft_text: Mapped[str] = mapped_column(Text)
    draft_labels: Mapped[dict[str, Any]]
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int | None]
    precision: Mapped[str] = mapped_column(String(20), default="")
    latency_ms: Mapped[float]
    context_ids: Mapped[list[Any]] = mapped_column(default=list)
    output_id: Mapped[int | None] = mapped_column(ForeignKey("model_outputs.id"))
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"))
    state: Mapped[str] = mapped_column(String(20), default="drafted")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


@append_only
class MedicalSignedReport(Base):
    """The final impression a radiologist signed for a draft, with its agreement to the draft. Never changes."""

    __tablename__ = "medical_signed_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("medical_drafts.id"), unique=True)
    study_id: Mapped[str] = mapped_column(String(128))
    hospital: Mapped[str] = mapped_column(String(64), index=True)
    signed_text: Mapped[str] = mapped_column(Text)
    signed_labels: Mapped[dict[str, Any]]
    edited: Mapped[bool]
    rouge_l: Mapped[float]
    finding_agreement: Mapped[float | None]
    signed_by: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)


@append_only
class MedicalAddendum(Base):
    """A correction to a signed report: a new row (the signed report itself never changes). Never changes."""

    __tablename__ = "medical_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    signed_report_id: Mapped[int] = mapped_column(ForeignKey("medical_signed_reports.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
