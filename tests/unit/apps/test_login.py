"""The app's sign-in and status page through Streamlit's AppTest (real database, real doctor checks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.audit.tables import AuditEvent
from core.auth.users import create_user
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade

APP = str(Path(__file__).resolve().parents[3] / "apps" / "main.py")


@pytest.fixture
def app_with_user(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> AppTest:
    monkeypatch.setenv("FINMED_BASE_MODEL", str(tiny_model_dir))
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        create_user(session, username="carla", role="compliance", password="s3cret-pass")
    return AppTest.from_file(APP, default_timeout=60)


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.run()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def test_login_then_status(app_with_user: AppTest) -> None:
    at = sign_in(app_with_user, "carla", "s3cret-pass")
    assert not at.exception
    assert [t.value for t in at.title] == ["Status"]
    assert any("carla" in m.value and "compliance" in m.value for m in at.sidebar.markdown)
    table = at.dataframe[0].value
    assert {"database", "migrations", "base model", "device"} <= set(table["check"])
    assert set(table.loc[table["check"].isin(["database", "migrations"]), "state"]) == {"ok"}


def test_wrong_password_is_refused(app_with_user: AppTest) -> None:
    at = sign_in(app_with_user, "carla", "not-her-password")
    assert [e.value for e in at.error] == ["Unknown user or wrong password."]
    assert [t.value for t in at.title] == ["finmed"]


def test_unmigrated_database_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FINMED_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "x", "y")
    assert len(at.error) == 1 and "finmed db upgrade" in at.error[0].value


def test_repeated_wrong_passwords_lock_the_account(app_with_user: AppTest) -> None:
    with session_scope(get_engine()) as session:
        create_user(session, username="lockme", role="analyst", password="not-this-one-either")
    at = app_with_user
    for _ in range(10):
        at = sign_in(at, "lockme", "wrong-password")
        assert [e.value for e in at.error] == ["Unknown user or wrong password."]
    at = sign_in(at, "lockme", "wrong-password")
    assert len(at.error) == 1 and "account 'lockme' is locked until" in at.error[0].value
    assert "finmed users unlock lockme" in at.error[0].value
    with session_scope(get_engine()) as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.subject_id == "lockme").order_by(AuditEvent.id)
        ).all()
    assert actions[-2:] == ["user.locked", "login.refused"]  # the refusal's event was committed
