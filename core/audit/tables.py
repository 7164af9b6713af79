"""The audit events table: one append-only row per audited action, linked into a hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.append_only import append_only
from core.db.base import Base, utcnow


@append_only
class AuditEvent(Base):
    """One append-only audit record; `hash` covers its content and `prev_hash` links it to the previous row."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(64), default="")
    subject_id: Mapped[str] = mapped_column(String(128), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # a fork would repeat one
    hash: Mapped[str] = mapped_column(String(64), unique=True)
