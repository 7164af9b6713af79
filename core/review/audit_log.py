"""Role-checked faces of the audit log: read events, verify the chain, and the hooks other rooms call to audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth.roles import require_role
from core.db.models import AuditEvent, ModelVersion, User
from core.review.audit import ChainReport, record_event, verify_chain

AUDITOR_ROLES = ("compliance",)  # admin is always allowed by require_role


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


def verify(session: Session, *, user: User, anchor: str | None = None) -> ChainReport:
    """Walk the whole chain (see core.review.audit.verify_chain); compliance and admin only."""
    require_role(user, *AUDITOR_ROLES, action="verify the audit log")
    return verify_chain(session, anchor=anchor)


def record_model_promotion(session: Session, *, user: User, model: ModelVersion) -> AuditEvent:
    """Audit hook for the model registry: call it in the transaction that promotes `model` (engineer or admin)."""
    require_role(user, "engineer", action="promote a model version")
    return record_event(
        session,
        actor=user.username,
        action="model.promoted",
        subject_type="model_version",
        subject_id=f"{model.name}@{model.version}",
        payload={"precision": model.precision, "method": model.method, "path": model.path},
    )
