"""Verify the hash-chained audit log: walk every event, check its hash and its link, optionally against an anchor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit.record import GENESIS, content_hash, event_stamp
from core.audit.tables import AuditEvent
from core.auth.roles import require_role
from core.db.tables import User

AUDITOR_ROLES = ("compliance",)  # admin is always allowed by require_role
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class ChainReport:
    """Result of walking the chain: `ok`, how many rows were checked, and the first broken row if any."""

    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    head: str = GENESIS


def verify_chain(
    session: Session, *, anchor: str | None = None, progress: Callable[[int, int], None] | None = None
) -> ChainReport:
    """Walk every event in id order and check its hash and its link to the previous event.

    A changed row breaks its own hash; a deleted, inserted or reordered row breaks the next row's link. Removing
    rows from the very end leaves a shorter valid chain, which only an external record of an earlier head can
    reveal: pass that head hash as `anchor` and the walk fails unless the anchor is still in the chain.
    `progress(checked, total)` is called every PROGRESS_EVERY events (the background job shows it).
    """
    total = int(session.scalar(select(func.count(AuditEvent.id))) or 0) if progress else 0
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
            created_at=event_stamp(event),
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
        if progress is not None and checked % PROGRESS_EVERY == 0:
            progress(checked, total)
    if not seen_anchor:
        return ChainReport(False, checked, None, f"anchor {anchor} is not in the chain: rows were removed from its end")
    return ChainReport(True, checked, head=prev)


def verify(
    session: Session, *, user: User, anchor: str | None = None, progress: Callable[[int, int], None] | None = None
) -> ChainReport:
    """Walk the whole chain (see verify_chain); compliance and admin only."""
    require_role(user, *AUDITOR_ROLES, action="verify the audit log")
    return verify_chain(session, anchor=anchor, progress=progress)
