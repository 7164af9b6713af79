"""End-to-end: `finmed serve keys add`, then `finmed serve --model NAME=PATH` as a real process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.serving.client import ServingClient

REPO = Path(__file__).resolve().parents[3]


def _finmed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from core.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_end_to_end(tiny_genai_dir: Path, tmp_path: Path) -> None:
    env = os.environ | {"FINMED_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(REPO)}
    refused = _finmed("serve", "keys", "add", "bench", "--role", "engineer", env=env)
    assert refused.returncode != 0 and "finmed db upgrade" in refused.stderr
    assert _finmed("db", "upgrade", env=env).returncode == 0
    added = _finmed("serve", "keys", "add", "bench", "--role", "engineer", env=env)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("fm-")
    again = _finmed("serve", "keys", "add", "bench", "--role", "engineer", env=env)
    assert again.returncode != 0 and "exists" in again.stderr
    listed = _finmed("serve", "keys", "list", env=env)
    assert "bench" in listed.stdout and key not in listed.stdout
    nothing = _finmed("serve", env=env)
    assert nothing.returncode != 0 and "--model NAME=PATH" in nothing.stderr

    port = _free_port()
    code = "from core.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--model", f"tiny={tiny_genai_dir}", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with ServingClient(url, key) as client:
            while not client.ready():
                assert proc.poll() is None and time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.1)
            secret_prompt = "Patient John Doe, MRN 12345, findings: clear lungs."
            done = client.complete("tiny", secret_prompt, max_tokens=4, min_tokens=4, temperature=0)
            assert done.completion_tokens == 4
        assert httpx.get(f"{url}/v1/completions").status_code in (401, 405)
        revoked = _finmed("serve", "keys", "revoke", "bench", env=env)
        assert revoked.returncode == 0
    finally:
        proc.terminate()
        log, _ = proc.communicate(timeout=30)
    assert "completion id=cmpl-" in log and "prompt_tokens=" in log
    assert "John Doe" not in log and "12345" not in log  # no prompt text in logs
