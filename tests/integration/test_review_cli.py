"""`finmed review ...` end to end on SQLite and PostgreSQL: queue, claim, decide (edit), export, to-training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from core.cli import app
from core.db.engine import session_scope
from core.db.tables import User
from core.errors import ConflictError, ValidationError
from core.review.policies import load_policy
from core.review.queue import record_output, route_output

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_db(migrated_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    from core.db.engine import get_engine
    from core.settings import get_settings

    monkeypatch.setenv("FINMED_DATABASE_URL", migrated_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    get_engine.cache_clear()
    policy = load_policy(REPO / "domains" / "medical" / "review_policy.yaml")
    with session_scope(migrated_engine) as session:
        users = {r: User(username=r, role=r, password_hash="-") for r in ("radiologist", "compliance", "engineer")}
        session.add_all(users.values())
        session.flush()
        output = record_output(
            session,
            user=users["engineer"],
            domain="medical",
            input_text="Patient: Ann Lee. CT head.",
            prompt="Findings: no bleed. Impression?",
            raw_output="Impression: normal study.",
            parsed={"kind": "draft"},
            model_name="radiology-lora",
            model_version=2,
        )
        route_output(session, user=users["engineer"], output=output, policy=policy)
    return migrated_engine


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_review_commands_end_to_end(cli_db: Engine, tmp_path: Path) -> None:
    listed = _run("review", "queue", "--as", "radiologist")
    assert listed.exit_code == 0 and "medical" in listed.output and "pending" in listed.output
    claimed = _run("review", "claim", "--as", "radiologist")
    assert claimed.exit_code == 0 and "claimed item 1" in claimed.output and "normal study" in claimed.output
    assert "queue is empty" in _run("review", "claim", "--as", "radiologist").output
    edit = tmp_path / "edit.txt"
    edit.write_text("Impression: normal study. No acute intracranial abnormality.\n")
    decided = _run("review", "decide", "1", "edited", "--as", "radiologist", "--edited-file", str(edit))
    assert decided.exit_code == 0 and "item 1: edited" in decided.output
    again = _run("review", "decide", "1", "approved", "--as", "radiologist")
    assert isinstance(again.exception, ConflictError) and "cannot go from 'edited' to 'approved'" in str(
        again.exception
    )
    out = tmp_path / "audit.csv"
    exported = _run(
        "review", "export", "--since", "2020-01-01", "--format", "csv", "--out", str(out), "--as", "compliance"
    )
    assert exported.exit_code == 0 and "wrote 1 items" in exported.output and "Ann Lee" not in out.read_text()
    bad = _run("review", "export", "--since", "last week", "--out", str(out), "--as", "compliance")
    assert isinstance(bad.exception, ValidationError) and "--since 'last week' is not a date" in str(bad.exception)
    records = tmp_path / "records.jsonl"
    trained = _run("review", "to-training", "--domain", "medical", "--out", str(records), "--as", "engineer")
    assert trained.exit_code == 0 and "wrote 1 training records" in trained.output
    record = json.loads(records.read_text())
    assert record["messages"][-1] == {"role": "assistant", "content": edit.read_text()}
    assert _run("audit", "verify", "--as", "compliance").exit_code == 0
    log = _run("audit", "log", "--as", "compliance", "--action", "review.decided")
    assert log.exit_code == 0 and "radiologist" in log.output
