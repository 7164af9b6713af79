"""The audit package's faces: who may read and verify the log, and anchors that catch rows cut from the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from core.audit.anchor import current_head, read_anchor, write_anchor
from core.audit.read import read_events
from core.audit.record import GENESIS, record_event
from core.audit.tables import AuditEvent
from core.audit.verify import verify, verify_chain
from core.db.tables import ROLES, User
from core.errors import PermissionDenied, ValidationError


def _users(session: Session) -> dict[str, User]:
    users = {role: User(username=role, role=role, password_hash="-") for role in ROLES}
    session.add_all(users.values())
    session.flush()
    return users


def test_only_compliance_and_admin_read_verify_and_anchor(db_session: Session, tmp_path: Path) -> None:
    users = _users(db_session)
    record_event(db_session, actor="engineer", action="model_version.promoted", subject_id="finance:2")
    record_event(db_session, actor="analyst", action="review.decided", subject_id="7")
    for role in ("analyst", "radiologist", "engineer"):
        with pytest.raises(PermissionDenied, match=f"read the audit log: role '{role}'"):
            read_events(db_session, user=users[role])
        with pytest.raises(PermissionDenied, match=f"verify the audit log: role '{role}'"):
            verify(db_session, user=users[role])
        with pytest.raises(PermissionDenied, match=f"anchor the audit log: role '{role}'"):
            write_anchor(db_session, user=users[role], path=tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()
    events = read_events(db_session, user=users["compliance"], action="model_version.promoted")
    assert [e.subject_id for e in events] == ["finance:2"]
    assert verify(db_session, user=users["admin"]).ok


def test_anchor_file_round_trip_and_head(db_session: Session, tmp_path: Path) -> None:
    users = _users(db_session)
    assert current_head(db_session) == (None, GENESIS)
    event = record_event(db_session, actor="a", action="x")
    record = write_anchor(db_session, user=users["compliance"], path=tmp_path / "anchor.json")
    assert record["head"] == event.hash and record["event_id"] == event.id
    assert json.loads((tmp_path / "anchor.json").read_text())["head"] == event.hash
    assert read_anchor(str(tmp_path / "anchor.json")) == event.hash
    assert read_anchor(event.hash.upper()) == event.hash
    assert verify(db_session, user=users["compliance"], anchor=event.hash).ok


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "neither a 64-digit head hash"),
        ("{not json", "not the JSON"),
        ('{"head": 3}', "'head'"),
    ],
)
def test_bad_anchor_is_one_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "anchor.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        read_anchor(str(path))


def test_anchor_reveals_rows_cut_from_the_end(db_session: Session) -> None:
    record_event(db_session, actor="a", action="one")
    anchored = record_event(db_session, actor="a", action="two")
    anchored_id, anchored_hash = anchored.id, anchored.hash
    assert verify_chain(db_session, anchor=anchored_hash).ok
    # Cut the last row behind the ORM's back (as a database administrator could; PostgreSQL's trigger is lifted).
    dialect = db_session.get_bind().dialect.name
    if dialect == "postgresql":
        db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.connection().execute(delete(AuditEvent.__table__).where(AuditEvent.__table__.c.id == anchored_id))
    if dialect == "postgresql":
        db_session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    db_session.expire_all()
    assert db_session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) != anchored_id
    assert verify_chain(db_session).ok  # shorter, still a valid chain
    report = verify_chain(db_session, anchor=anchored_hash)
    assert not report.ok and "rows were removed from its end" in report.reason
