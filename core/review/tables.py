"""Tables of the review queue: model outputs that reach a person, review items, their decisions, routing policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow

REVIEW_STATES = ("pending", "in_review", "approved", "rejected", "edited", "escalated")
DECISIONS = ("approved", "rejected", "edited", "escalated")
QUEUES = ("analyst", "radiologist", "compliance")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ModelOutput(Base):
    """One model call whose result reaches a person: what went in (PII-masked), what came out, which model, how fast."""

    __tablename__ = "model_outputs"
    __table_args__ = (Index(None, "domain", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(20))
    input_text: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    prompt: Mapped[str] = mapped_column(Text)
    raw_output: Mapped[str] = mapped_column(Text)
    parsed: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    parse_error: Mapped[str] = mapped_column(Text, default="")
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int | None]
    precision: Mapped[str] = mapped_column(String(20), default="")
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    context_ids: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class RoutingPolicy(Base):
    """A routing policy as it was loaded: name, version and SHA-256 of its content; one row per (name, version)."""

    __tablename__ = "routing_policies"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    domain: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewItem(Base):
    """A model output waiting for, or having had, a human decision; `state` follows core.review.states."""

    __tablename__ = "review_items"
    __table_args__ = (
        CheckConstraint(_in("state", REVIEW_STATES), name="state"),
        CheckConstraint(_in("queue", QUEUES), name="queue"),
        Index(None, "state", "domain", "queue", "priority"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    output_id: Mapped[int] = mapped_column(ForeignKey("model_outputs.id"), unique=True)
    domain: Mapped[str] = mapped_column(String(20))
    queue: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    priority: Mapped[int] = mapped_column(default=0)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    policy_name: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[int]
    policy_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The open claim: who holds it, the state it was claimed from (returned to on expiry), and until when.
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_from: Mapped[str | None] = mapped_column(String(20))
    claimed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    # The latest decision (the full history is in review_decisions).
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    edited_text: Mapped[str | None] = mapped_column(Text)
    diff: Mapped[str | None] = mapped_column(Text)


class ReviewDecision(Base):
    """One state change of a review item with who made it, when and why (edits keep the text and its diff)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    edited_text: Mapped[str | None] = mapped_column(Text)
    diff: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
