"""API keys on the real server: roles (403), immediate revocation (401), per-address throttling (429, audited)."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine, select

from core.audit.tables import AuditEvent
from core.db.engine import session_scope
from core.serving.keys import add_key, revoke_key


def _engine(server) -> Engine:  # type: ignore[no-untyped-def]
    return server.app.state.serving.engine  # type: ignore[no-any-return]


def _add(server, name: str, role: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with session_scope(_engine(server)) as session:
        key = add_key(session, name=name, role=role)
    return {"Authorization": f"Bearer {key}"}


def _complete(server, headers: dict[str, str]) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {"model": "tiny", "prompt": "Risk level:", "max_tokens": 2}
    return httpx.post(f"{server.url}/v1/completions", json=body, headers=headers, timeout=30)


def test_a_scoring_key_cannot_call_engineer_only_routes(contract_server) -> None:  # type: ignore[no-untyped-def]
    scoring = _add(contract_server, "scoring-dashboard", "analyst")
    assert _complete(contract_server, scoring).status_code == 200
    refused = httpx.get(f"{contract_server.url}/metrics", headers=scoring)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == 403 and error["type"] == "forbidden"
    assert "'scoring-dashboard' acts as analyst" in error["message"] and "engineer" in error["message"]
    engineer = _add(contract_server, "grafana", "engineer")
    admin = _add(contract_server, "ops", "admin")
    for headers in (engineer, admin):
        scraped = httpx.get(f"{contract_server.url}/metrics", headers=headers)
        assert scraped.status_code == 200 and "finmed:" in scraped.text


def test_a_revoked_key_is_refused_at_once(contract_server) -> None:  # type: ignore[no-untyped-def]
    headers = _add(contract_server, "leaving-client", "analyst")
    assert _complete(contract_server, headers).status_code == 200
    with session_scope(_engine(contract_server)) as session:
        revoke_key(session, name="leaving-client", actor="test")
    refused = _complete(contract_server, headers)  # the very next request, no cache keeps the key alive
    assert refused.status_code == 401 and "invalid API key" in refused.json()["error"]["message"]


def test_invalid_keys_are_throttled_per_address_and_audited(throttled_server) -> None:  # type: ignore[no-untyped-def]
    wrong = {"Authorization": "Bearer fm-guessed-key"}
    for _ in range(3):
        assert _complete(throttled_server, wrong).status_code == 401
    for headers in (wrong, throttled_server.headers):  # the address is refused, whatever key it sends now
        refused = _complete(throttled_server, headers)
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "too many invalid API keys from 127.0.0.1" in refused.json()["error"]["message"]
    assert httpx.get(f"{throttled_server.url}/healthz").status_code == 200  # health stays open to probes
    with session_scope(_engine(throttled_server)) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "api_key.throttled")).all()
    assert len(events) == 2 and {e.subject_id for e in events} == {"127.0.0.1"}
    assert events[0].payload["failures"] == 3
