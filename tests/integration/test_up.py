"""`finmed up`: bootstrap, then the model server, the worker (when installed) and the app run together; one
Ctrl-C stops them all; a child that dies takes the others down and the command names it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.errors import FinmedError
from core.up import Child, Supervisor

FINMED = str(Path(sys.executable).parent / "finmed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FINMED, *args], capture_output=True, text=True, env=env, timeout=300)


def test_a_dying_child_stops_the_others(tmp_path: Path) -> None:
    sleeper = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "sleeper.log")
    quitter = Child("quitter", [sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "quitter.log")
    lines: list[str] = []
    with pytest.raises(FinmedError, match=r"quitter exited with status 3; the others were stopped"):
        Supervisor([sleeper, quitter], say=lines.append).run()
    assert sleeper.process is not None and sleeper.process.poll() is not None
    assert any(line.startswith("sleeper: started (pid") for line in lines)


def test_up_runs_server_and_app_and_ctrl_c_stops_all(tmp_path: Path, tiny_genai_dir: Path) -> None:
    env = {**os.environ, "FINMED_DATA_DIR": str(tmp_path / "var"), "FINMED_USER": "admin"}
    prepared = run("up", "--tiny", "--prepare-only", env=env)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert prepared.stdout.count("password (shown once)") == 4  # admin + one demo user per reviewer role
    # The domains' first-run models are measured against fp32 and pass the gate, so the server config names them.
    assert "serving: config written to" in prepared.stdout and "not served" not in prepared.stdout, prepared.stdout
    registered = run("model", "register", "tiny-risk", "--path", str(tiny_genai_dir), "--precision", "int4", env=env)
    assert registered.returncode == 0, registered.stderr
    assert run("model", "promote", "tiny-risk", "1", "--force", env=env).returncode == 0

    app_port, api_port = free_port(), free_port()
    proc = subprocess.Popen(
        [FINMED, "up", "--tiny", "--port", str(app_port), "--api-port", str(api_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        while not (any("app: ready" in x for x in lines) and any("server: ready" in x for x in lines)):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        output = "".join(lines)
        assert "password" not in output  # shown once, at the first start only
        assert "worker: started" in output or "worker: not started (this install has no `finmed worker`" in output
        pids = [int(p) for p in re.findall(r": started \(pid (\d+)", output)]
        assert len(pids) >= 2
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/_stcore/health", timeout=5) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    rest = proc.stdout.read() if proc.stdout else ""
    assert code == 0, "".join(lines) + rest
    assert "stopped: server" in rest
    assert not [pid for pid in pids if alive(pid)], "a child outlived Ctrl-C"
    for port in (app_port, api_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens after Ctrl-C"
    assert (tmp_path / "var" / "logs" / "server.log").is_file()
