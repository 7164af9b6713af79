"""Sign-in sessions for the app: a signed, expiring token (itsdangerous) naming a server-side session row.

The cookie holds `token_id` signed with the app's secret and time-stamped; the row makes sign-out (and disabling a
user) revoke it on the server, which a signature alone cannot do. The secret comes from FINMED_SESSION_SECRET or,
when unset, from DATA_DIR/session_secret, generated (0600) on first use.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.atomic import atomic_file
from core.audit.record import record_event
from core.auth.tables import SignInSession
from core.db.base import utcnow
from core.db.tables import User
from core.settings import Settings, get_settings

SALT = "finmed.sign-in"
SECRET_FILE = "session_secret"


def session_secret(settings: Settings | None = None) -> str:
    """The signing key: FINMED_SESSION_SECRET, else the data folder's key file (created on first use)."""
    settings = settings or get_settings()
    if settings.session_secret is not None and settings.session_secret.get_secret_value():
        return settings.session_secret.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.is_file():
        with atomic_file(path) as tmp:
            tmp.write_text(secrets.token_urlsafe(48))
            os.chmod(tmp, 0o600)
    return path.read_text().strip()


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(session_secret(settings), salt=SALT)


def lifetime(settings: Settings | None = None) -> timedelta:
    """How long a sign-in lasts (FINMED_SESSION_HOURS)."""
    return timedelta(hours=(settings or get_settings()).session_hours)


def start_session(session: Session, *, user: User, settings: Settings | None = None) -> str:
    """Open a sign-in session for `user` (already authenticated) and return its signed token for the cookie."""
    settings = settings or get_settings()
    row = SignInSession(token_id=secrets.token_urlsafe(32), user_id=user.id, expires_at=utcnow() + lifetime(settings))
    session.add(row)
    session.flush()
    record_event(session, actor=user.username, action="session.started", subject_type="user", subject_id=user.username)
    return str(_signer(settings).dumps(row.token_id))


def _row(session: Session, token: str, settings: Settings) -> SignInSession | None:
    try:
        token_id = _signer(settings).loads(token, max_age=int(lifetime(settings).total_seconds()))
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(token_id, str):
        return None
    return session.scalar(select(SignInSession).where(SignInSession.token_id == token_id))


def resolve(session: Session, *, token: str | None, settings: Settings | None = None) -> User | None:
    """The active user a token signs in, or None (no token, bad signature, expired, revoked, user disabled)."""
    if not token:
        return None
    settings = settings or get_settings()
    row = _row(session, token, settings)
    if row is None or row.revoked_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=utcnow().tzinfo)
    if expires <= utcnow():
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def end_session(session: Session, *, token: str | None, settings: Settings | None = None) -> bool:
    """Revoke the session a token names (sign-out); returns whether one was open."""
    if not token:
        return False
    settings = settings or get_settings()
    row = _row(session, token, settings)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    user = session.get(User, row.user_id)
    session.flush()
    record_event(
        session,
        actor=user.username if user else "?",
        action="session.ended",
        subject_type="user",
        subject_id=user.username if user else str(row.user_id),
    )
    return True


def end_all_sessions(session: Session, *, user_id: int) -> int:
    """Revoke every open session of a user (when an admin disables them); returns how many."""
    result = session.execute(
        update(SignInSession)
        .where(SignInSession.user_id == user_id, SignInSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)
