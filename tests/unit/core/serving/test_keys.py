"""API keys: shown once, stored hashed, looked up by hash, revocable; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConflictError, NotFoundError, ValidationError
from core.serving.keys import ApiKey, add_key, hash_key, list_keys, lookup_key, revoke_key


def test_key_lifecycle(db_session: Session) -> None:
    key = add_key(db_session, name="dashboard")
    assert key.startswith("fm-") and len(key) > 40
    row = db_session.scalar(select(ApiKey).where(ApiKey.name == "dashboard"))
    assert row is not None and row.key_hash == hash_key(key) and key not in (row.key_hash, row.key_hint)
    assert lookup_key(db_session, key=key) is row
    assert lookup_key(db_session, key=key + "x") is None
    other = add_key(db_session, name="bench")
    assert other != key and [r.name for r in list_keys(db_session)] == ["dashboard", "bench"]
    revoke_key(db_session, name="dashboard")
    assert lookup_key(db_session, key=key) is None
    assert lookup_key(db_session, key=other) is not None


def test_key_errors(db_session: Session) -> None:
    add_key(db_session, name="a")
    with pytest.raises(ConflictError, match="'a' exists"):
        add_key(db_session, name="a")
    with pytest.raises(ValidationError, match="1-64"):
        add_key(db_session, name="  ")
    with pytest.raises(NotFoundError, match="'zz' not found"):
        revoke_key(db_session, name="zz")
