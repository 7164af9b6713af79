"""API keys of the model server: one per client, stored only as a SHA-256 hash, shown once when created.

SHA-256 (not argon2) because keys are 256-bit random strings, not passwords: a fast hash is safe against
guessing and lets the server look a key up by its hash on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db.base import Base, utcnow
from core.errors import ConflictError, NotFoundError, ValidationError

KEY_PREFIX = "fm-"


class ApiKey(Base):
    """A client allowed to call the model server (`Authorization: Bearer <key>`)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key, as stored in api_keys.key_hash."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def add_key(session: Session, *, name: str) -> str:
    """Create a key for client `name` and return it (the only time it is visible).

    Raises:
        ValidationError: empty or too long name.
        ConflictError: a key with this name exists.
    """
    name = name.strip()
    if not name or len(name) > 64:
        raise ValidationError(f"API key name {name!r} must be 1-64 characters")
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise ConflictError(f"API key {name!r} exists; revoke it (`finmed serve keys revoke {name}`) or pick a name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=hash_key(key), key_hint=key[:7]))
    session.flush()
    return key


def revoke_key(session: Session, *, name: str) -> None:
    """Deactivate the key of client `name`.

    Raises:
        NotFoundError: no such key.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise NotFoundError(f"API key {name!r} not found; `finmed serve keys list` shows the names")
    row.active = False
    row.revoked_at = utcnow()


def list_keys(session: Session) -> list[ApiKey]:
    """Every key row (hashes only), oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def lookup_key(session: Session, *, key: str) -> ApiKey | None:
    """The active key row matching `key`, else None."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    return row if row is not None and row.active else None
