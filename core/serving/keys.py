"""API keys of the model server: one per client, stored only as a SHA-256 hash, shown once, acting as one role.

SHA-256 (not argon2) because keys are 256-bit random strings, not passwords: a fast hash is safe against
guessing and lets the server look a key up by its hash on every request. Each key carries the role it acts as
(the user roles of core.db.tables.ROLES): a route names the roles it admits (core.serving.state.key_roles), so a
scoring client's `analyst` key cannot call engineer-only routes. Keys are managed by the operator who holds the
database (`finmed serve keys add|list|revoke`, like `finmed users add`); creation and revocation are audited.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.audit.record import record_event
from core.auth.roles import validate_role
from core.db.base import Base, utcnow
from core.db.tables import ROLES
from core.errors import ConflictError, NotFoundError, ValidationError

KEY_PREFIX = "fm-"


class ApiKey(Base):
    """A client allowed to call the model server (`Authorization: Bearer <key>`) as `role`."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(20), default="engineer", server_default="engineer")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key, as stored in api_keys.key_hash."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def add_key(session: Session, *, name: str, role: str = "engineer", actor: str = "system") -> str:
    """Create a key for client `name` acting as `role` and return it (the only time it is visible).

    Raises:
        ValidationError: empty or too long name, unknown role.
        ConflictError: a key with this name exists.
    """
    name = name.strip()
    if not name or len(name) > 64:
        raise ValidationError(f"API key name {name!r} must be 1-64 characters")
    validate_role(role)
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise ConflictError(f"API key {name!r} exists; revoke it (`finmed serve keys revoke {name}`) or pick a name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=hash_key(key), key_hint=key[:7], role=role))
    session.flush()
    record_event(
        session, actor=actor, action="api_key.created", subject_type="api_key", subject_id=name, payload={"role": role}
    )
    return key


def revoke_key(session: Session, *, name: str, actor: str = "system") -> None:
    """Deactivate the key of client `name`; servers refuse it from their next request on.

    Raises:
        NotFoundError: no such key.
        ConflictError: the key is already revoked.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise NotFoundError(f"API key {name!r} not found; `finmed serve keys list` shows the names")
    if not row.active:
        raise ConflictError(f"API key {name!r} was already revoked at {row.revoked_at:%Y-%m-%d %H:%M}")
    row.active = False
    row.revoked_at = utcnow()
    record_event(session, actor=actor, action="api_key.revoked", subject_type="api_key", subject_id=name)


def list_keys(session: Session) -> list[ApiKey]:
    """Every key row (hashes only), oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def lookup_key(session: Session, *, key: str) -> ApiKey | None:
    """The active key row matching `key`, else None."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    return row if row is not None and row.active else None
