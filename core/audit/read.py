"""Read the audit log (oldest first), filtered by time and action; compliance and admin only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.audit.verify import AUDITOR_ROLES
from core.auth.roles import require_role
from core.db.tables import User


def read_events(
    session: Session, *, user: User, since: datetime | None = None, action: str | None = None, limit: int = 1000
) -> list[AuditEvent]:
    """The full audit log (oldest first); only compliance and admin may read it."""
    require_role(user, *AUDITOR_ROLES, action="read the audit log")
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query.limit(limit)))
