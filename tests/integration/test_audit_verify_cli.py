"""`finmed audit verify` and `audit anchor` on SQLite and PostgreSQL: any changed, removed or reordered row is named;
an anchor file catches rows cut from the end; exit codes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from core.audit.record import content_hash, event_stamp, record_event
from core.audit.tables import AuditEvent
from core.cli import app
from core.db.engine import session_scope
from core.db.tables import User

COLUMNS = ("created_at", "actor", "action", "subject_type", "subject_id", "payload", "prev_hash", "hash")
N_EVENTS = 6


@pytest.fixture
def chain(migrated_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A committed chain of events in a database the CLI is pointed at; returns the event ids in order."""
    from core.db.engine import get_engine
    from core.settings import get_settings

    monkeypatch.setenv("FINMED_DATABASE_URL", migrated_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    get_engine.cache_clear()
    with session_scope(migrated_engine) as session:
        session.add(User(username="auditor", role="compliance", password_hash="-"))
        session.add(User(username="ana", role="analyst", password_hash="-"))
        for i in range(N_EVENTS):
            record_event(
                session, actor="ana", action="test.event", subject_id=str(i), payload={"i": i, "x": [1.5, "é"]}
            )
    with session_scope(migrated_engine) as session:
        return list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _tamper(engine: Engine, *statements: tuple[str, dict]) -> None:
    """Run raw SQL below the ORM guard (as someone with database access would), past the trigger on PostgreSQL."""
    with engine.begin() as conn:
        pg = engine.dialect.name == "postgresql"
        if pg:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        for sql, params in statements:
            conn.execute(text(sql), params)
        if pg:
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def _verify(*extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["audit", "verify", "--as", "auditor", *extra])


def test_intact_chain_verifies(chain: list[int]) -> None:
    result = _verify()
    assert result.exit_code == 0, result.output
    assert f"audit chain ok: {N_EVENTS} events" in result.output


@pytest.mark.parametrize("position", range(N_EVENTS))
def test_changed_row_is_named(chain: list[int], migrated_engine: Engine, position: int) -> None:
    target = chain[position]
    _tamper(migrated_engine, ("UPDATE audit_events SET subject_id = 'forged' WHERE id = :id", {"id": target}))
    result = _verify()
    assert result.exit_code == 1
    assert f"audit chain broken at row {target}: content does not match its hash" in result.output


def test_rehashed_row_is_named_by_its_successor(chain: list[int], migrated_engine: Engine) -> None:
    # A forger who also recomputes the changed row's own hash still breaks the next row's link.
    target = chain[2]
    with session_scope(migrated_engine) as session:
        event = session.get(AuditEvent, target)
        forged = content_hash(
            prev_hash=event.prev_hash,
            created_at=event_stamp(event),
            actor=event.actor,
            action=event.action,
            subject_type=event.subject_type,
            subject_id="forged",
            payload=event.payload,
        )
    _tamper(
        migrated_engine,
        ("UPDATE audit_events SET subject_id = 'forged', hash = :h WHERE id = :id", {"h": forged, "id": target}),
    )
    result = _verify()
    assert result.exit_code == 1
    assert f"audit chain broken at row {chain[3]}: prev_hash does not match" in result.output


def test_swapped_rows_are_named(chain: list[int], migrated_engine: Engine) -> None:
    # Exchange the whole content of two neighbouring rows (ids stay): the order of the chain is broken.
    a, b = chain[1], chain[2]
    with session_scope(migrated_engine) as session:
        rows = {
            r.id: r._asdict() for r in session.execute(select(AuditEvent.__table__).where(AuditEvent.id.in_([a, b])))
        }
    payload = "CAST(:payload AS JSON)" if migrated_engine.dialect.name == "postgresql" else ":payload"
    sets = ", ".join(f"{c} = {payload if c == 'payload' else ':' + c}" for c in COLUMNS)
    statements = [("UPDATE audit_events SET prev_hash = 'tmp-p', hash = 'tmp-h' WHERE id = :id", {"id": a})]
    for src, dst in ((a, b), (b, a)):  # unique prev_hash/hash: free row a's values first
        values = {c: rows[src][c] for c in COLUMNS}
        values.update(payload=json.dumps(values["payload"]), id=dst)
        statements.append((f"UPDATE audit_events SET {sets} WHERE id = :id", values))
    _tamper(migrated_engine, *statements)
    with session_scope(migrated_engine) as session:
        assert session.get(AuditEvent, a).hash == rows[b]["hash"] and session.get(AuditEvent, b).hash == rows[a]["hash"]
    result = _verify()
    assert result.exit_code == 1
    assert f"audit chain broken at row {a}: prev_hash does not match" in result.output


@pytest.mark.parametrize("position", range(N_EVENTS - 1))
def test_deleted_row_is_named_by_its_successor(chain: list[int], migrated_engine: Engine, position: int) -> None:
    _tamper(migrated_engine, ("DELETE FROM audit_events WHERE id = :id", {"id": chain[position]}))
    result = _verify()
    assert result.exit_code == 1
    assert f"audit chain broken at row {chain[position + 1]}: prev_hash does not match" in result.output


def test_cut_tail_needs_an_anchor(chain: list[int], migrated_engine: Engine) -> None:
    head = _verify().output.split("head ")[1].split()[0]
    _tamper(migrated_engine, ("DELETE FROM audit_events WHERE id = :id", {"id": chain[-1]}))
    assert _verify().exit_code == 0  # a shorter chain is self-consistent ...
    result = _verify("--anchor", head)  # ... but no longer contains the head recorded before
    assert result.exit_code == 1 and "rows were removed from its end" in result.output


def test_anchor_file_catches_a_cut_tail(chain: list[int], migrated_engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    anchor = tmp_path / "anchor.json"
    written = CliRunner().invoke(app, ["audit", "anchor", "--out", str(anchor), "--as", "auditor"])
    assert written.exit_code == 0, written.output
    assert json.loads(anchor.read_text())["event_id"] == chain[-1]
    assert _verify("--anchor", str(anchor)).exit_code == 0
    _tamper(migrated_engine, ("DELETE FROM audit_events WHERE id = :id", {"id": chain[-1]}))
    result = _verify("--anchor", str(anchor))
    assert result.exit_code == 1 and "rows were removed from its end" in result.output
    refused = CliRunner().invoke(app, ["audit", "anchor", "--out", str(tmp_path / "b.json"), "--as", "ana"])
    assert refused.exit_code != 0 and not (tmp_path / "b.json").exists()


def test_only_compliance_and_admin_verify(chain: list[int]) -> None:
    result = CliRunner().invoke(app, ["audit", "verify", "--as", "ana"])
    assert result.exit_code != 0
    assert "verify the audit log: role 'analyst'" in str(result.exception)
