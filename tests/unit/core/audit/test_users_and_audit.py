"""User service and hash-chained audit log, on SQLite and PostgreSQL (each test rolled back)."""

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.audit.verify import verify_chain
from core.auth.roles import require_role
from core.auth.users import authenticate, create_user, get_user
from core.db.append_only import AppendOnlyViolation
from core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError


def test_create_and_authenticate(db_session: Session) -> None:
    user = create_user(db_session, username="ana", role="analyst", password="correct horse")
    assert user.password_hash.startswith("$argon2")
    assert "correct horse" not in user.password_hash
    assert authenticate(db_session, username="ana", password="correct horse").id == user.id
    assert authenticate(db_session, username="ana", password="wrong password") is None
    assert authenticate(db_session, username="nobody", password="whatever1") is None
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["user.created", "login.succeeded", "login.failed", "login.failed"]


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"username": "x y", "role": "analyst", "password": "long enough"}, ValidationError, "invalid username"),
        ({"username": "bob", "role": "doctor", "password": "long enough"}, ValidationError, "unknown role 'doctor'"),
        ({"username": "bob", "role": "analyst", "password": "short"}, ValidationError, "too short"),
    ],
)
def test_bad_user_input(db_session: Session, kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        create_user(db_session, **kwargs)


def test_duplicate_and_missing_user(db_session: Session) -> None:
    create_user(db_session, username="rad", role="radiologist", password="long enough")
    with pytest.raises(ConflictError, match="already exists"):
        create_user(db_session, username="rad", role="analyst", password="long enough")
    with pytest.raises(NotFoundError, match="no user named 'ghost'"):
        get_user(db_session, "ghost")


def test_role_check(db_session: Session) -> None:
    analyst = create_user(db_session, username="an", role="analyst", password="long enough")
    admin = create_user(db_session, username="ad", role="admin", password="long enough")
    assert require_role(analyst, "analyst", action="score") is analyst
    assert require_role(admin, "compliance", action="read audit log") is admin
    with pytest.raises(PermissionDenied, match="role 'analyst'"):
        require_role(analyst, "compliance", action="read audit log")


def test_audit_chain_verifies_and_detects_tampering(db_session: Session) -> None:
    for i in range(5):
        create_user(db_session, username=f"user{i}", role="engineer", password="long enough")
    report = verify_chain(db_session)
    assert report.ok and report.checked == 5
    # Tamper below the ORM guard (as a person with database access would), then verify names the row.
    third = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()[2]
    db_session.connection().exec_driver_sql(
        "ALTER TABLE audit_events DISABLE TRIGGER ALL" if db_session.bind.dialect.name == "postgresql" else "SELECT 1"
    )
    db_session.connection().exec_driver_sql(f"UPDATE audit_events SET actor = 'mallory' WHERE id = {third.id}")
    db_session.expire_all()
    report = verify_chain(db_session)
    assert not report.ok and report.broken_id == third.id and report.checked == 2


def test_orm_refuses_audit_update_and_delete(db_session: Session) -> None:
    create_user(db_session, username="u1", role="engineer", password="long enough")
    event = db_session.scalars(select(AuditEvent)).first()
    with pytest.raises(AppendOnlyViolation, match="append-only"):
        with db_session.begin_nested():
            event.actor = "someone else"
    with pytest.raises(AppendOnlyViolation, match="append-only"):
        with db_session.begin_nested():
            db_session.delete(db_session.scalars(select(AuditEvent)).first())
    with pytest.raises(AppendOnlyViolation, match="bulk"):
        db_session.execute(update(AuditEvent).values(actor="x"))
    with pytest.raises(AppendOnlyViolation, match="bulk delete"):
        db_session.execute(delete(AuditEvent.__table__))
