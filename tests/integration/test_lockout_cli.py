"""`finmed users unlock` and `finmed serve keys add --role / list / revoke` as real subprocesses on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from core.auth.lockout import SignInGuard
from core.auth.users import authenticate
from core.db.engine import make_engine, session_scope
from core.db.tables import User

FINMED = str(Path(sys.executable).parent / "finmed")


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FINMED, *args], capture_output=True, text=True, env=os.environ | env, timeout=120)


def test_an_admin_unlocks_a_locked_account(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'finmed.db'}"
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_DATABASE_URL": url}
    assert _run("db", "upgrade", env=env).returncode == 0
    weak = _run("users", "add", "ivy", "--role", "analyst", "--password", "ivy-ivy-ivy", env=env)
    assert weak.returncode != 0 and "contains the user name" in weak.stderr
    assert _run("users", "add", "ivy", "--role", "analyst", "--password", "a-long-password-1", env=env).returncode == 0
    engine = make_engine(url)
    guard = SignInGuard()
    for _ in range(10):
        with session_scope(engine) as session:
            assert authenticate(session, username="ivy", password="wrong-password", guard=guard) is None
    listed = _run("users", "list", env=env)
    assert listed.returncode == 0 and "UTC" in listed.stdout  # the locked-until column
    unlocked = _run("users", "unlock", "ivy", env=env)
    assert unlocked.returncode == 0, unlocked.stderr
    with session_scope(engine) as session:
        assert session.scalar(select(User.locked_until).where(User.username == "ivy")) is None
        assert authenticate(session, username="ivy", password="a-long-password-1", guard=guard) is not None
    again = _run("users", "unlock", "ivy", env=env)
    assert again.returncode != 0 and "not locked" in again.stderr
    engine.dispose()


def test_keys_carry_roles(tmp_path: Path) -> None:
    env = {"FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_DATABASE_URL": f"sqlite:///{tmp_path / 'finmed.db'}"}
    assert _run("db", "upgrade", env=env).returncode == 0
    bad = _run("serve", "keys", "add", "dash", "--role", "wizard", env=env)
    assert bad.returncode != 0 and "unknown role 'wizard'" in bad.stderr
    added = _run("serve", "keys", "add", "dash", "--role", "analyst", env=env)
    assert added.returncode == 0 and added.stdout.strip().splitlines()[-1].startswith("fm-")
    assert _run("serve", "keys", "revoke", "dash", env=env).returncode == 0
    listed = _run("serve", "keys", "list", env=env)
    assert "dash" in listed.stdout and "analyst" in listed.stdout and "no" in listed.stdout
    twice = _run("serve", "keys", "revoke", "dash", env=env)
    assert twice.returncode != 0 and "already revoked" in twice.stderr
