"""Adapters over HTTP on the real server: listed with their parent, chosen per request by `model`, loaded and
unloaded at run time by engineer keys only (audited), a wrong adapter refused with one line (422)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from core.audit.tables import AuditEvent
from core.db.engine import session_scope
from core.serving.config import AdapterSpec, ModelSpec, ServeConfig
from core.serving.keys import add_key
from tests.integration.serving.conftest import RunningServer, running_server


@pytest.fixture(scope="module")
def server(adapter_exports, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:  # noqa: ANN001
    e = adapter_exports
    config = ServeConfig(
        models=[
            ModelSpec(name="base", path=e.base, adapters=[AdapterSpec(name="a1", path=e.adapters["a1"])]),
            ModelSpec(name="merged-a2", path=e.merged["a2"]),
            ModelSpec(name="plain", path=e.plain),
        ]
    )
    with running_server(config, tmp_path_factory.mktemp("adapter-server")) as running:
        yield running


def _key(server: RunningServer, name: str, role: str) -> dict[str, str]:
    with session_scope(server.app.state.serving.engine) as session:  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {add_key(session, name=name, role=role)}"}


def _complete(server: RunningServer, model: str) -> httpx.Response:
    body = {"model": model, "prompt": "Findings: small effusion.", "max_tokens": 10, "temperature": 0}
    return httpx.post(f"{server.url}/v1/completions", json=body, headers=server.headers, timeout=60)


def test_models_lists_adapters_with_their_parent(server: RunningServer) -> None:
    listed = httpx.get(f"{server.url}/v1/models", headers=server.headers).json()["data"]
    by_id = {m["id"]: m for m in listed}
    assert set(by_id) == {"base", "merged-a2", "plain", "a1"}
    assert by_id["a1"]["parent"] == "base" and by_id["base"]["parent"] is None
    assert by_id["a1"]["root"].endswith("adapter-a1")


def test_load_use_and_unload_at_run_time(server: RunningServer, adapter_exports) -> None:  # noqa: ANN001
    engineer, analyst = _key(server, "ops", "engineer"), _key(server, "dashboard", "analyst")
    body = {"name": "a2", "base": "base", "path": str(adapter_exports.adapters["a2"])}
    refused = httpx.post(f"{server.url}/v1/adapters", json=body, headers=analyst)
    assert refused.status_code == 403
    loaded = httpx.post(f"{server.url}/v1/adapters", json=body, headers=engineer, timeout=60)
    assert loaded.status_code == 201, loaded.text
    assert loaded.json()["parent"] == "base" and loaded.json()["rank"] == 4
    assert _complete(server, "a2").json()["choices"][0]["text"] == _complete(server, "merged-a2").json()["choices"][0][
        "text"
    ]
    again = httpx.post(f"{server.url}/v1/adapters", json=body, headers=engineer)
    assert again.status_code == 409 and "already served" in again.json()["error"]["message"]
    assert [a["name"] for a in httpx.get(f"{server.url}/v1/adapters", headers=analyst).json()] == ["a1", "a2"]

    gone = httpx.delete(f"{server.url}/v1/adapters/a2", headers=engineer)
    assert gone.status_code == 200
    missing = _complete(server, "a2")
    assert missing.status_code == 404 and "'a2' is not served here" in missing.json()["error"]["message"]
    assert _complete(server, "a1").status_code == 200, "the other adapter keeps serving"
    with session_scope(server.app.state.serving.engine) as session:  # type: ignore[attr-defined]
        actions = [
            (e.action, e.actor)
            for e in session.scalars(select(AuditEvent).where(AuditEvent.subject_type == "model_adapter"))
        ]
    assert actions == [("serving.adapter_loaded", "api-key:ops"), ("serving.adapter_unloaded", "api-key:ops")]


def test_a_wrong_adapter_is_one_line_422(server: RunningServer, tmp_path: Path, adapter_exports) -> None:  # noqa: ANN001
    engineer = _key(server, "ops2", "engineer")
    body = {"name": "x", "base": "plain", "path": str(adapter_exports.adapters["a1"])}
    refused = httpx.post(f"{server.url}/v1/adapters", json=body, headers=engineer)
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("model 'plain' has no adapter slots")
    nowhere = httpx.post(f"{server.url}/v1/adapters", json={**body, "base": "base", "path": str(tmp_path)},
                         headers=engineer)  # fmt: skip
    assert nowhere.status_code == 404 and "holds no adapter.onnx_adapter" in nowhere.json()["error"]["message"]
    unknown = httpx.delete(f"{server.url}/v1/adapters/nope", headers=engineer)
    assert unknown.status_code == 404
