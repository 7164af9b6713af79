"""The five roles and the one check every service call makes before acting for a user."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db.tables import ROLES, User
from core.errors import PermissionDenied, ValidationError


def validate_role(role: str) -> str:
    """Return `role` if it is one of the known roles.

    Raises:
        ValidationError: naming the bad role and the allowed ones.
    """
    if role not in ROLES:
        raise ValidationError(f"unknown role '{role}': choose one of {', '.join(ROLES)}")
    return role


def require_role(user: User | None, *allowed: str, action: str) -> User:
    """Return `user` when it is active and its role is in `allowed` (admin is always allowed).

    Raises:
        PermissionDenied: naming the user, its role and the action refused.
    """
    if user is None:
        raise PermissionDenied(f"{action}: sign in first")
    if not user.active:
        raise PermissionDenied(f"{action}: user '{user.username}' is disabled")
    if user.role != "admin" and user.role not in allowed:
        raise PermissionDenied(f"{action}: role '{user.role}' of user '{user.username}' is not allowed")
    return user


def acting_user(session: Session, *, user_id: int) -> User:
    """The user with `user_id`, for faces that keep only the id between requests (the app's pages).

    Raises:
        PermissionDenied: no such user, or the user was disabled since signing in.
    """
    user = session.get(User, user_id)
    if user is None:
        raise PermissionDenied(f"user id {user_id} no longer exists: sign in again")
    if not user.active:
        raise PermissionDenied(f"user '{user.username}' is disabled: ask an admin")
    return user
