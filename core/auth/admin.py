"""Administration of people and API clients (admin only): list and create users, disable or enable them (which
revokes their app sessions), and the model server's API keys. Every change is audited."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import require_role
from core.auth.sessions import end_all_sessions
from core.auth.users import create_user, get_user, list_users
from core.db.tables import User
from core.errors import ConflictError
from core.serving import keys


def users(session: Session, *, user: User) -> list[User]:
    """Every user, oldest first."""
    require_role(user, "admin", action="list users")
    return list_users(session)


def add_user(session: Session, *, user: User, username: str, role: str, password: str) -> User:
    """Create a user (see core.auth.users.create_user for the checks)."""
    require_role(user, "admin", action="create users")
    return create_user(session, username=username, role=role, password=password, actor=user.username)


def set_active(session: Session, *, user: User, username: str, active: bool) -> User:
    """Enable or disable a user; disabling revokes every app session of theirs.

    Raises:
        ConflictError: an admin disabling their own account.
    """
    require_role(user, "admin", action="enable or disable users")
    target = get_user(session, username)
    if target.id == user.id and not active:
        raise ConflictError("you cannot disable your own account: ask another admin")
    target.active = active
    revoked = 0 if active else end_all_sessions(session, user_id=target.id)
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="user.enabled" if active else "user.disabled",
        subject_type="user",
        subject_id=username,
        payload={"sessions_revoked": revoked},
    )
    return target


def api_keys(session: Session, *, user: User) -> list[keys.ApiKey]:
    """Every API key row (hashes and hints only)."""
    require_role(user, "admin", action="list API keys")
    return keys.list_keys(session)


def add_api_key(session: Session, *, user: User, name: str) -> str:
    """Create an API key for client `name`; returns it (shown once)."""
    require_role(user, "admin", action="create API keys")
    key = keys.add_key(session, name=name)
    record_event(session, actor=user.username, action="api_key.created", subject_type="api_key", subject_id=name)
    return key


def revoke_api_key(session: Session, *, user: User, name: str) -> None:
    """Deactivate client `name`'s key."""
    require_role(user, "admin", action="revoke API keys")
    keys.revoke_key(session, name=name)
    record_event(session, actor=user.username, action="api_key.revoked", subject_type="api_key", subject_id=name)
