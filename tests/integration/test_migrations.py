"""Migrations round-trip on SQLite and PostgreSQL, and agree with the ORM models."""

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from core.audit.record import record_event
from core.db.engine import session_scope
from core.db.migrate import current_revision, downgrade, head_revision, schema_drift, upgrade


def test_upgrade_downgrade_upgrade(any_engine: Engine) -> None:
    upgrade(any_engine)
    assert current_revision(any_engine) == head_revision()
    tables = set(inspect(any_engine).get_table_names())
    assert {"users", "model_versions", "jobs", "audit_events"} <= tables

    downgrade(any_engine, "base")
    assert current_revision(any_engine) is None
    assert set(inspect(any_engine).get_table_names()) <= {"alembic_version"}

    upgrade(any_engine)
    assert current_revision(any_engine) == head_revision()


def test_models_and_migrations_agree(any_engine: Engine) -> None:
    upgrade(any_engine)
    assert schema_drift(any_engine) == []


def test_drift_is_detected(any_engine: Engine) -> None:
    upgrade(any_engine)
    with any_engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    diffs = schema_drift(any_engine)
    assert any(d[0] == "remove_table" and d[1].name == "stray" for d in diffs)


@pytest.mark.postgres
def test_postgres_trigger_refuses_audit_changes(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    with session_scope(pg_engine) as session:
        record_event(session, actor="t", action="test")
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with pg_engine.begin() as conn:
                conn.execute(text(statement))
