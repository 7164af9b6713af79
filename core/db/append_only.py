"""ORM-level guard that refuses UPDATE and DELETE on append-only tables (PostgreSQL also has a trigger).

A table module marks its class with `append_only(cls)` (the audit events, signed reports); the database layer knows
no table by name.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from core.errors import PermissionDenied

_APPEND_ONLY: list[type] = []


def append_only(cls: type) -> type:
    """Class decorator: refuse ORM updates and deletes of this table's rows (inserts only)."""
    if cls not in _APPEND_ONLY:
        _APPEND_ONLY.append(cls)
    return cls


class AppendOnlyViolation(PermissionDenied):
    """Someone tried to change or remove a row of an append-only table."""


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _context, _instances) -> None:  # type: ignore[no-untyped-def]
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, tuple(_APPEND_ONLY)) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyViolation(f"{type(obj).__tablename__} is append-only: row {obj.id} cannot be changed")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    names = {cls.__tablename__ for cls in _APPEND_ONLY}  # type: ignore[attr-defined]
    if getattr(table, "name", None) in names:
        raise AppendOnlyViolation(
            f"{table.name} is append-only: bulk {'update' if state.is_update else 'delete'} refused"
        )
