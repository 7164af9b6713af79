"""`finmed demo --tiny` end to end on SQLite and PostgreSQL: the summary it prints is what the database holds.

Two runs: with a domain double on the bootstrap seam (core's steps, deterministic counts, idempotent second run),
and with the domains this install registers (the real `finmed` command in a subprocess).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from core.audit.tables import AuditEvent
from core.bootstrap import DEMO_USERS, SERVE_FILE, TINY_MODEL
from core.db.engine import session_scope
from core.db.tables import ModelVersion, User
from core.review.states import FINAL_STATES
from core.review.tables import ReviewItem
from core.serving.config import load_serve_config
from core.settings import get_settings

sys.path.insert(0, str(Path(__file__).parent))
from demo_double import DRAFTS, LEVELS, make_plugin  # noqa: E402

FINMED = str(Path(sys.executable).parent / "finmed")


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def backlog_in_db(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(ReviewItem.queue, func.count())
            .where(ReviewItem.state.not_in(FINAL_STATES))
            .group_by(ReviewItem.queue)
        )
        return dict(rows.all())


def audit_events(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count(AuditEvent.id))) or 0)


def check_core_summary(summary: dict, engine: Engine) -> None:
    """The parts of the summary core computes, each against a direct query."""
    backlog = backlog_in_db(engine)
    assert {q: n for q, n in summary["review_backlog"].items() if n} == backlog
    with session_scope(engine) as session:
        versions = list(session.scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)))
        assert [(r["name"], r["version"], r["status"]) for r in summary["model_versions"]] == [
            (v.name, v.version, v.status) for v in versions
        ]
    assert summary["audit"]["ok"] is True
    assert summary["audit"]["checked"] == audit_events(engine)


@pytest.fixture
def demo_env(any_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """FINMED_DATABASE_URL at each kind of test database (PostgreSQL: a private schema)."""
    if any_engine.dialect.name == "postgresql":
        monkeypatch.setenv("FINMED_DATABASE_URL", _url(any_engine))
    else:
        monkeypatch.setenv("FINMED_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'finmed.db'}")
    get_settings.cache_clear()
    return any_engine


def test_demo_tiny_with_domain_double(
    demo_env: Engine, tiny_genai_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import plugins
    from core.cli import app
    from core.db.engine import make_engine

    calls: list = []
    monkeypatch.setattr(plugins, "load_plugins", lambda: (make_plugin(tiny_genai_dir, calls),))
    runner = CliRunner()
    out = tmp_path / "summary.json"
    first = runner.invoke(app, ["demo", "--tiny", "--json", str(out)])
    assert first.exit_code == 0, first.output + repr(first.exception)
    summary = json.loads(out.read_text())
    settings = get_settings()
    engine = make_engine(settings.db_url)

    # The domain got the tiny model and the admin to act as; it reported what it did.
    assert len(calls) == 1 and calls[0].tiny and calls[0].actor == "admin"
    assert Path(calls[0].base_model) == settings.models_dir / TINY_MODEL
    assert (settings.models_dir / TINY_MODEL / "config.json").is_file()
    assert summary["domains"] == {"demotest": {"scored": len(LEVELS), "drafts": DRAFTS}}
    # Counts by risk level, queue backlog, versions and audit: each against the database.
    assert summary["outcomes"]["demotest"]["risk_level"] == {str(level): 2 for level in range(6)}
    assert summary["review_backlog"] == {"analyst": 6, "radiologist": DRAFTS, "compliance": 0}
    check_core_summary(summary, engine)
    (version,) = summary["model_versions"]
    assert version["name"] == "demotest-risk" and "drop +0.40 pts vs fp32" in version["report"]
    # The server config names the registered export; passwords were printed once, for admin and each demo user.
    serve = load_serve_config(settings.data_dir / SERVE_FILE)
    assert [(m.name, m.path) for m in serve.models] == [("demotest-risk", tiny_genai_dir.resolve())]
    assert first.output.count("password (shown once)") == 1 + len(DEMO_USERS)
    with session_scope(engine) as session:
        roles = dict(session.execute(select(User.username, User.role)).all())
    assert roles == {"admin": "admin", **DEMO_USERS}
    assert "audit chain: verified" in first.output and "review backlog by queue: analyst 6" in first.output

    # A second run skips what is done: no new users, rows, versions or passwords.
    events = audit_events(engine)
    second = runner.invoke(app, ["demo", "--tiny", "--json", str(out)])
    assert second.exit_code == 0, second.output
    again = json.loads(out.read_text())
    assert "password" not in second.output
    assert again["domains"] == {"demotest": {"scored": 0, "drafts": 0}}
    assert again["review_backlog"] == summary["review_backlog"] and len(again["model_versions"]) == 1
    assert audit_events(engine) == events
    engine.dispose()


def test_demo_tiny_installed_domains(demo_env: Engine, tmp_path: Path) -> None:
    """The real command with whatever domains are installed; every count it prints is checked against the db."""
    from core.db.engine import make_engine

    settings = get_settings()
    out = tmp_path / "summary.json"
    env = {**os.environ, "FINMED_DATA_DIR": str(settings.data_dir), "FINMED_DATABASE_URL": settings.db_url}
    result = subprocess.run(
        [FINMED, "demo", "--tiny", "--json", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    engine = make_engine(settings.db_url)
    check_core_summary(summary, engine)
    for name in summary["skipped"]:
        assert f"{name}: no bootstrap step in this install; skipped" in result.stdout
    assert set(summary["domains"]) | set(summary["skipped"]) >= set(summary["outcomes"])
    # Every model the domains registered is measured against fp32 and passes the gate, so the server loads it.
    served = {m.name for m in load_serve_config(settings.data_dir / SERVE_FILE).models}
    assert served == {v["name"] for v in summary["model_versions"]}, result.stdout
    assert all("vs fp32" in v["report"] for v in summary["model_versions"]), summary["model_versions"]
    assert "not served" not in result.stdout
    engine.dispose()
