"""Append to the hash-chained audit log: each event stores SHA-256 of its content and of the previous event.

Sign-in, the model registry, the review queue and the domains record their events here; core.audit.verify walks
the chain and core.audit.anchor keeps an outside copy of its head.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.db.base import utcnow
from core.db.write_lock import begin_write

GENESIS = "0" * 64


def content_hash(
    *,
    prev_hash: str,
    created_at: str,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
) -> str:
    """SHA-256 over a canonical JSON of the event's content and the previous hash."""
    body = json.dumps(
        [prev_hash, created_at, actor, action, subject_type, subject_id, payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def event_stamp(event: AuditEvent) -> str:
    # Timestamps are hashed as naive UTC ISO text: SQLite returns naive UTC, PostgreSQL an aware value in the
    # session's time zone, which is converted to UTC first so the hash does not depend on the server's TimeZone.
    stamp = event.created_at
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)
    return stamp.replace(tzinfo=None).isoformat(timespec="microseconds")


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str = "",
    subject_id: str = "",
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction.

    Appenders are serialised so the chain never forks: on PostgreSQL by an advisory transaction lock, on SQLite by
    taking the write lock (`BEGIN IMMEDIATE`) before reading the last hash. The unique index on `prev_hash` refuses
    a fork in the database even if a caller bypasses this function.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7243001)"))
    else:
        begin_write(session)
    last = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    event = AuditEvent(
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        payload=payload or {},
        prev_hash=last or GENESIS,
        created_at=utcnow(),
    )
    event.hash = content_hash(
        prev_hash=event.prev_hash,
        created_at=event_stamp(event),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        payload=event.payload,
    )
    session.add(event)
    session.flush()
    return event
