"""The Prometheus scrape key: one secret from the environment (FINMED_SCRAPE_KEY) that both endpoints accept.

The exporter compares it directly; the model server accepts only API keys stored (hashed) in the database, so
`finmed metrics sync-key` stores this one as the API key named `prometheus`. Nothing secret lives in the repo:
compose passes the variable from the operator's `.env` to the migrate job, the exporter and Prometheus.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ValidationError
from core.serving.keys import ApiKey, hash_key

KEY_NAME = "prometheus"
MIN_LENGTH = 24


def sync_scrape_key(session: Session, *, key: str | None) -> str:
    """Make the model server accept `key` as the API key `prometheus` (created, updated or left as it is).

    Returns:
        What happened: "created", "updated" or "unchanged".

    Raises:
        ValidationError: no key, or one too short to be a secret.
    """
    if not key or len(key.strip()) < MIN_LENGTH:
        raise ValidationError(
            f"FINMED_SCRAPE_KEY must be set to a random string of at least {MIN_LENGTH} characters "
            "(e.g. `openssl rand -hex 32`); see .env.example"
        )
    key = key.strip()
    row = session.scalar(select(ApiKey).where(ApiKey.name == KEY_NAME))
    if row is None:
        session.add(
            ApiKey(name=KEY_NAME, key_hash=hash_key(key), key_hint=key[:7], role="engineer")
        )  # /metrics needs it
        session.flush()
        return "created"
    if row.key_hash == hash_key(key) and row.active:
        return "unchanged"
    row.key_hash, row.key_hint, row.active, row.revoked_at = hash_key(key), key[:7], True, None
    session.flush()
    return "updated"
