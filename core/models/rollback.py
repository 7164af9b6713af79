"""Roll a model back: serve again the version that was promoted before the current one, through the same
accuracy gate as a promotion (core.models.registry.promote refuses retired versions, so rollback is its own step)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import require_role
from core.db.tables import ModelVersion, User
from core.errors import ConflictError
from core.models.registry import DEFAULT_MAX_DROP_PTS, WRITERS, check_accuracy_gate


def rollback(session: Session, *, user: User, name: str, max_drop_pts: float = DEFAULT_MAX_DROP_PTS) -> ModelVersion:
    """Retire the promoted version of `name` and promote the newest older version that was retired before it.

    Raises:
        PermissionDenied: not an engineer or admin.
        ConflictError: nothing is promoted, no older version to return to, or it fails the accuracy gate.
    """
    require_role(user, *WRITERS, action="roll back a model")
    rows = list(session.scalars(select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version)))
    current = next((v for v in reversed(rows) if v.status == "promoted"), None)
    if current is None:
        raise ConflictError(f"model {name} has no promoted version to roll back")
    older = [v for v in rows if v.version < current.version and v.status == "retired"]
    if not older:
        raise ConflictError(f"model {name} v{current.version} has no earlier retired version to roll back to")
    target = older[-1]
    check_accuracy_gate(target, max_drop_pts).raise_if_failed()
    current.status = "retired"
    target.status = "promoted"
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="model_version.rolled_back",
        subject_type="model_version",
        subject_id=f"{name}:{target.version}",
        payload={"from": current.version, "to": target.version},
    )
    return target
