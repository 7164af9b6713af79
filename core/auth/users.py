"""User service: create, list, authenticate; passwords hashed with argon2id, checked against a minimum policy.

`authenticate` is throttled (core.auth.lockout): per user name and client address, with an account lock after
repeated failures that lifts itself after a stated time or by an admin (`finmed users unlock NAME`).
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.lockout import SignInGuard, default_guard
from core.auth.roles import validate_role
from core.db.base import utcnow
from core.db.tables import User
from core.errors import ConflictError, NotFoundError, ValidationError

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 hashes any length; a cap keeps one sign-in from costing megabytes of hashing input


def generate_password() -> str:
    """A random password people can type (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


def check_password_policy(password: str, *, username: str) -> None:
    """The minimum password policy (NIST SP 800-63B style: length, not guessable from context; no composition rules).

    Raises:
        ValidationError: naming the user and the rule the password breaks.
    """
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password for '{username}' is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"password for '{username}' is too long: at most {MAX_PASSWORD} characters")
    if len(set(password)) < 4:
        raise ValidationError(f"password for '{username}' repeats too few characters: use at least 4 different ones")
    if len(username) >= 3 and username.lower() in password.lower():
        raise ValidationError(f"password for '{username}' contains the user name; choose one that does not")


def create_user(session: Session, *, username: str, role: str, password: str, actor: str = "system") -> User:
    """Create a user with a hashed password and record it in the audit log.

    Raises:
        ValidationError: bad username or role, or a password below the policy (`check_password_policy`).
        ConflictError: the username exists.
    """
    if not USERNAME_RE.match(username):
        raise ValidationError(f"invalid username '{username}': use 2-64 letters, digits or _ . @ -")
    validate_role(role)
    check_password_policy(password, username=username)
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


def authenticate(
    session: Session, *, username: str, password: str, client: str = "", guard: SignInGuard | None = None
) -> User | None:
    """The active user whose password matches, or None; every outcome is audited.

    Args:
        session: the database session (commit it even when this raises, to keep the refusal's audit event).
        username: the name typed.
        password: the password typed.
        client: the client's address ("" when unknown, e.g. a local browser); throttled separately.
        guard: the failure windows (default: this process's `default_guard`).

    Raises:
        RateLimited: the account is locked or too many failures came for this name or address; the password
            was not checked (audited as login.refused).
    """
    guard = guard or default_guard
    client = client or "local"
    user = session.scalar(select(User).where(User.username == username))
    guard.refuse_if_throttled(session, username=username, client=client, user=user)
    ok = False
    if user is not None and user.active and len(password) <= MAX_PASSWORD:
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
        payload={"client": client},
    )
    if not ok or user is None:
        guard.count_failure(session, username=username, client=client, user=user)
        return None
    guard.count_success(username=username)
    user.last_login_at = utcnow()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user
