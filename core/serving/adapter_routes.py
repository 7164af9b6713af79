"""Adapters at run time: list, load and unload LoRA adapters on a served base without a restart.

GET /v1/adapters lists them for any key; POST /v1/adapters and DELETE /v1/adapters/{name} change what is served and
admit engineer and admin keys only. Every change is an audit event (`serving.adapter_loaded` / `_unloaded`) naming the
key that asked, in the same hash chain as the rest of finmed, when the server has a database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from core.serving.config import AdapterSpec
from core.serving.state import KeyIdentity, ServingState, get_state, key_roles

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])


class LoadAdapter(AdapterSpec):
    """Body of POST /v1/adapters: an adapter export to load on a served base."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field(min_length=1, description="The served base model to load it on (exported with --adapter-slots).")


class AdapterOut(BaseModel):
    """One served adapter."""

    name: str
    parent: str
    path: str
    rank: int
    memory_bytes: int
    loaded_at: int


def _out(state: ServingState, name: str) -> AdapterOut:
    view = state.adapters[name]
    info = view.model.adapters[name]
    return AdapterOut(
        name=name,
        parent=str(view.parent),
        path=str(info.folder),
        rank=info.rank,
        memory_bytes=info.memory_bytes,
        loaded_at=int(info.loaded_at),
    )


def _audit(state: ServingState, key: KeyIdentity | None, action: str, name: str, payload: dict[str, Any]) -> None:
    if state.engine is None:
        return
    from core.audit.record import record_event
    from core.db.engine import session_scope

    with session_scope(state.engine) as session:
        actor = f"api-key:{key.name}" if key is not None else "api-key:none"
        record_event(session, actor=actor, action=action, subject_type="model_adapter", subject_id=name,
                     payload=payload)  # fmt: skip


@router.get("")
def list_adapters(request: Request) -> list[AdapterOut]:
    """The adapters served now, with the base each runs on."""
    state = get_state(request)
    return [_out(state, name) for name in sorted(state.adapters)]


@router.post("", status_code=201)
def load_adapter(
    body: LoadAdapter, request: Request, key: KeyIdentity | None = Depends(key_roles("engineer"))
) -> AdapterOut:
    """Load an adapter export on a served base; 422 when it does not fit the base, 409 when the name is taken."""
    state = get_state(request)
    state.load_adapter(body.name, body.base, Path(body.path))
    out = _out(state, body.name)
    _audit(state, key, "serving.adapter_loaded", body.name, out.model_dump())
    return out


@router.delete("/{name}")
def unload_adapter(name: str, request: Request, key: KeyIdentity | None = Depends(key_roles("engineer"))) -> dict:
    """Stop serving an adapter after the batch running now; its requests get 404 from then on."""
    state = get_state(request)
    parent = state.adapters[name].parent if name in state.adapters else None
    state.unload_adapter(name)
    _audit(state, key, "serving.adapter_unloaded", name, {"parent": parent})
    return {"name": name, "unloaded": True}
