"""Sign-in sessions: a signed token resolves to its user until it expires, is revoked, is tampered with, or the
user is disabled; the secret is generated once into the data folder."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from core.auth import admin, sessions
from core.auth.tables import SignInSession
from core.auth.users import create_user
from core.settings import get_settings, load_settings


def test_token_lifecycle(db_session: Session) -> None:
    ana = create_user(db_session, username="ana", role="analyst", password="long-enough")
    boss = create_user(db_session, username="boss", role="admin", password="long-enough")
    token = sessions.start_session(db_session, user=ana)
    assert sessions.resolve(db_session, token=token).id == ana.id
    assert sessions.resolve(db_session, token=token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert sessions.resolve(db_session, token=None) is None
    assert sessions.end_session(db_session, token=token) is True
    assert sessions.resolve(db_session, token=token) is None  # revoked on the server
    assert sessions.end_session(db_session, token=token) is False
    second = sessions.start_session(db_session, user=ana)
    admin.set_active(db_session, user=boss, username="ana", active=False)
    assert sessions.resolve(db_session, token=second) is None  # disabled: every session revoked
    admin.set_active(db_session, user=boss, username="ana", active=True)
    third = sessions.start_session(db_session, user=ana)
    row = db_session.query(SignInSession).order_by(SignInSession.id.desc()).first()
    row.expires_at = row.expires_at - timedelta(days=2)
    db_session.flush()
    assert sessions.resolve(db_session, token=third) is None  # expired


def test_secret_is_generated_once_and_a_setting_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    first = sessions.session_secret(settings)
    assert len(first) >= 48 and sessions.session_secret(settings) == first
    assert (settings.data_dir / "session_secret").stat().st_mode & 0o077 == 0
    assert sessions.session_secret(load_settings(data_dir=tmp_path, session_secret="from-env")) == "from-env"
