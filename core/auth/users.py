"""User service: create, list, authenticate; passwords hashed with argon2id."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import validate_role
from core.db.base import utcnow
from core.db.tables import User
from core.errors import ConflictError, NotFoundError, ValidationError

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8


def generate_password() -> str:
    """A random password people can type (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def create_user(session: Session, *, username: str, role: str, password: str, actor: str = "system") -> User:
    """Create a user with a hashed password and record it in the audit log.

    Raises:
        ValidationError: bad username, role or a too short password.
        ConflictError: the username exists.
    """
    if not USERNAME_RE.match(username):
        raise ValidationError(f"invalid username '{username}': use 2-64 letters, digits or _ . @ -")
    validate_role(role)
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password for '{username}' is too short: at least {MIN_PASSWORD} characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ConflictError(f"user '{username}' already exists")
    user = User(username=username, role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    record_event(
        session, actor=actor, action="user.created", subject_type="user", subject_id=username, payload={"role": role}
    )
    return user


def get_user(session: Session, username: str) -> User:
    """The user named `username`.

    Raises:
        NotFoundError: no such user.
    """
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user named '{username}'")
    return user


def list_users(session: Session) -> list[User]:
    """All users, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def count_users(session: Session) -> int:
    """How many users exist (the first `finmed up` creates an admin when this is 0)."""
    return int(session.scalar(select(func.count(User.id))) or 0)


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The active user whose password matches, or None; both outcomes are audited."""
    user = session.scalar(select(User).where(User.username == username))
    ok = False
    if user is not None and user.active:
        try:
            ok = _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    record_event(
        session,
        actor=username,
        action="login.succeeded" if ok else "login.failed",
        subject_type="user",
        subject_id=username,
    )
    if not ok or user is None:
        return None
    user.last_login_at = utcnow()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user
