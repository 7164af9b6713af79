"""Fixtures of the page tests: the configured (temporary) SQLite database with one user per role, and AppTest
runs of apps/main.py as a signed-in user at a URL path."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from apps.auth import SESSION_KEY, SignedIn
from core.auth.users import create_user
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import ROLES

APP = str(Path(__file__).resolve().parents[3] / "apps" / "main.py")
PASSWORD = "long-enough-pw"


@pytest.fixture
def people(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> dict[str, SignedIn]:
    """One user per role (username = role), password PASSWORD."""
    monkeypatch.setenv("FINMED_BASE_MODEL", str(tiny_model_dir))
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        users = {role: create_user(session, username=role, role=role, password=PASSWORD) for role in ROLES}
        return {role: SignedIn(u.id, u.username, u.role) for role, u in users.items()}


def open_app(user: SignedIn, url_path: str = "") -> AppTest:
    """apps/main.py signed in as `user`, opened at `url_path` as a browser would (empty: the default page)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[SESSION_KEY] = user
    if url_path:
        at._page_hash = calc_hash(url_path)  # what the browser sends for /<url_path>
    return at.run()
