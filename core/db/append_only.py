"""ORM-level guard that refuses UPDATE and DELETE on append-only tables (PostgreSQL also has a trigger)."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from core.db.models import AuditEvent
from core.errors import PermissionDenied

APPEND_ONLY = (AuditEvent,)


class AppendOnlyViolation(PermissionDenied):
    """Someone tried to change or remove a row of an append-only table."""


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _context, _instances) -> None:  # type: ignore[no-untyped-def]
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, APPEND_ONLY) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyViolation(f"{type(obj).__tablename__} is append-only: row {obj.id} cannot be changed")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    names = {cls.__tablename__ for cls in APPEND_ONLY}
    if getattr(table, "name", None) in names:
        raise AppendOnlyViolation(
            f"{table.name} is append-only: bulk {'update' if state.is_update else 'delete'} refused"
        )
