"""Hash-chained audit log: each event stores SHA-256 of its content and of the previous event."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

import core.db.append_only  # noqa: F401  (installs the ORM append-only guard)
from core.db.models import AuditEvent
from core.review.write_lock import begin_write

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


def _stamp(event: AuditEvent) -> str:
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
    from core.db.base import utcnow

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
        created_at=_stamp(event),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        payload=event.payload,
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """Result of walking the chain: `ok`, how many rows were checked, and the first broken row if any."""

    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    head: str = GENESIS


def verify_chain(session: Session, *, anchor: str | None = None) -> ChainReport:
    """Walk every event in id order and check its hash and its link to the previous event.

    A changed row breaks its own hash; a deleted, inserted or reordered row breaks the next row's link. Removing
    rows from the very end leaves a shorter valid chain, which only an external record of an earlier head can
    reveal: pass that head hash as `anchor` and the walk fails unless the anchor is still in the chain.
    """
    prev = GENESIS
    checked = 0
    seen_anchor = anchor is None
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        if event.prev_hash != prev:
            return ChainReport(
                False,
                checked,
                event.id,
                "prev_hash does not match the previous row's hash (a row before it was changed, removed or moved)",
            )
        expected = content_hash(
            prev_hash=event.prev_hash,
            created_at=_stamp(event),
            actor=event.actor,
            action=event.action,
            subject_type=event.subject_type,
            subject_id=event.subject_id,
            payload=event.payload,
        )
        if event.hash != expected:
            return ChainReport(False, checked, event.id, "content does not match its hash")
        prev = event.hash
        seen_anchor = seen_anchor or event.hash == anchor
        checked += 1
    if not seen_anchor:
        return ChainReport(False, checked, None, f"anchor {anchor} is not in the chain: rows were removed from its end")
    return ChainReport(True, checked, head=prev)
