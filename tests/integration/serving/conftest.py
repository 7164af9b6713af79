"""The real model server (uvicorn) on an ephemeral loopback port in a background thread, serving the tiny model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.db.engine import make_engine, session_scope
from core.db.migrate import upgrade
from core.serving.app import create_app
from core.serving.config import ModelSpec, ServeConfig
from core.serving.keys import add_key


@dataclass
class RunningServer:
    """Where a started test server listens and the API key that opens it."""

    url: str
    key: str
    app: object

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextmanager
def running_server(config: ServeConfig, db_dir: Path) -> Iterator[RunningServer]:
    """Migrate a fresh SQLite database, add an API key, serve `config` until the block ends."""
    engine = make_engine(f"sqlite:///{db_dir / 'serve.db'}")
    upgrade(engine)
    with session_scope(engine) as session:
        key = add_key(session, name="tests")
    app = create_app(config, models_dir=db_dir, engine=engine)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError(f"test server at {url} not ready after 60 s")
    try:
        yield RunningServer(url=url, key=key, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.dispose()


@pytest.fixture(scope="module")
def server(
    tiny_genai_dir: Path, slow_genai_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server with the tiny model under names batched and solo (no batching), and a slower model under
    small-queue names (busy: two slots, one: one slot) so queue overflows and timeouts happen on any machine."""
    config = ServeConfig(
        models=[
            ModelSpec(name="tiny", path=tiny_genai_dir, max_batch_size=8, max_wait_ms=100, max_queue=64),
            ModelSpec(name="tiny-solo", path=tiny_genai_dir, max_batch_size=1, max_wait_ms=0, max_queue=64),
            ModelSpec(name="tiny-busy", path=slow_genai_dir, max_batch_size=1, max_wait_ms=0, max_queue=2),
            ModelSpec(name="tiny-one", path=slow_genai_dir, max_batch_size=1, max_wait_ms=0, max_queue=1),
        ]
    )
    with running_server(config, tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="module")
def contract_server(tiny_genai_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The tiny model alone, with the key-failure limit out of a fuzzer's way (it sends invalid keys on purpose)."""
    config = ServeConfig(models=[ModelSpec(name="tiny", path=tiny_genai_dir)], key_failures_per_minute=100_000)
    with running_server(config, tmp_path_factory.mktemp("contract")) as running:
        yield running


@pytest.fixture(scope="module")
def throttled_server(tiny_genai_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The tiny model behind a key-failure limit of 3 a minute per client address."""
    config = ServeConfig(models=[ModelSpec(name="tiny", path=tiny_genai_dir)], key_failures_per_minute=3)
    with running_server(config, tmp_path_factory.mktemp("throttled")) as running:
        yield running
