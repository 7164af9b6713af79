"""Read the audit log, filtered by time, action, actor and subject; compliance and admin only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.audit.verify import AUDITOR_ROLES
from core.auth.roles import require_role
from core.db.tables import User


def read_events(
    session: Session,
    *,
    user: User,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    actor: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    newest_first: bool = False,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Audit events matching every filter given (oldest first unless `newest_first`); compliance and admin only.

    `action` ending in `.` or `*` matches a prefix (`review.` finds review.claimed and review.decided).
    """
    require_role(user, *AUDITOR_ROLES, action="read the audit log")
    query = select(AuditEvent).order_by(AuditEvent.id.desc() if newest_first else AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    if action:
        if action.endswith(("*", ".")):
            query = query.where(AuditEvent.action.startswith(action.rstrip("*"), autoescape=True))
        else:
            query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if subject_type:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id:
        query = query.where(AuditEvent.subject_id == subject_id)
    return list(session.scalars(query.limit(limit)))
