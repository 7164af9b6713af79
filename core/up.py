"""`finmed up`: bootstrap the suite (core/bootstrap.py), then run the model server, the job worker and the app
together until Ctrl-C, which stops all three at once.

Children run in their own sessions, so a Ctrl-C reaches only this supervisor, which then sends each child SIGTERM
and waits for it (SIGKILL after a grace period): each stops its own way (uvicorn finishes requests, the worker
returns its claimed job) and nothing is left half-written. If one child exits on its own, the others are stopped
too and the command fails naming it. Child output goes to DATA_DIR/logs/<child>.log.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from core.bootstrap import BootstrapResult
from core.errors import FinmedError
from core.settings import Settings

GRACE_S = 15.0
READY_TIMEOUT_S = 180.0


@dataclass
class Child:
    """One process `finmed up` runs: its command, where it logs, and the URL that answers when it is ready."""

    name: str
    command: list[str]
    log: Path
    health_url: str | None = None
    url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    ready: bool = False


def app_script() -> Path:
    """Path of the Streamlit entry script (located, not imported: core never imports apps)."""
    spec = importlib.util.find_spec("apps")
    folders = list(spec.submodule_search_locations or []) if spec else []
    script = Path(folders[0]) / "main.py" if folders else None
    if script is None or not script.is_file():
        raise FinmedError("the apps package is not installed: run `make up` or `pip install -e .`")
    return script


def finmed_command(*args: str) -> list[str]:
    """The `finmed` command of this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "core.cli", *args]


def app_child(settings: Settings, *, port: int, address: str) -> Child:
    """The Streamlit app."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_script()),
        "--server.port", str(port), "--server.address", address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
    ]  # fmt: skip
    local = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    return Child(
        "app",
        command,
        settings.data_dir / "logs" / "app.log",
        health_url=f"http://{local}:{port}/_stcore/health",
        url=f"http://{address}:{port}",
    )


def server_child(settings: Settings, config: Path, *, port: int, address: str) -> Child:
    """The model server on the config written from the registry."""
    local = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    return Child(
        "server",
        finmed_command("serve", "--config", str(config), "--host", address, "--port", str(port)),
        settings.data_dir / "logs" / "server.log",
        health_url=f"http://{local}:{port}/healthz",
        url=f"http://{address}:{port}/v1",
    )


def worker_child(settings: Settings) -> Child:
    """The job worker (`finmed worker`)."""
    return Child("worker", finmed_command("worker"), settings.data_dir / "logs" / "worker.log")


def plan_children(
    settings: Settings,
    result: BootstrapResult,
    *,
    commands: Iterable[str],
    app_port: int,
    api_port: int,
    address: str,
    say: Callable[[str], None],
) -> list[Child]:
    """What to start: the server (when a model version is registered), the worker (when this install has the
    `worker` command) and the app; says why for what it leaves out."""
    children = []
    if result.serve_config is not None:
        children.append(server_child(settings, result.serve_config, port=api_port, address=address))
    else:
        say("server: not started (no model version registered; `finmed model register` adds one)")
    if "worker" in set(commands):
        children.append(worker_child(settings))
    else:
        say("worker: not started (this install has no `finmed worker` command); jobs wait in the queue")
    children.append(app_child(settings, port=app_port, address=address))
    return children


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (our own loopback URL)
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Supervisor:
    """Starts children, watches them, and stops them all together.

    Args:
        children: what to run.
        say: one line per event.
    """

    def __init__(self, children: list[Child], *, say: Callable[[str], None]) -> None:
        self.children = children
        self.say = say
        self.stopping = False
        self._logs: list[IO[bytes]] = []

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def start(self) -> None:
        """Start every child in its own session, output appended to its log file."""
        for child in self.children:
            child.log.parent.mkdir(parents=True, exist_ok=True)
            log = child.log.open("ab")
            self._logs.append(log)
            child.process = subprocess.Popen(
                child.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
            self.say(f"{child.name}: started (pid {child.process.pid}, log {child.log})")

    def exited(self) -> Child | None:
        """The first child that has exited, if any."""
        return next((c for c in self.children if c.process is not None and c.process.poll() is not None), None)

    def watch(self, *, ready_timeout_s: float = READY_TIMEOUT_S, poll_s: float = 0.25) -> Child | None:
        """Wait until a signal arrives (returns None) or a child exits (returns it); says when each child is ready.

        Raises:
            FinmedError: a child with a health URL did not answer within `ready_timeout_s`.
        """
        started = time.monotonic()
        while not self.stopping:
            dead = self.exited()
            if dead is not None:
                return dead
            for child in self.children:
                if not child.ready and (child.health_url is None or _answers(child.health_url)):
                    child.ready = True
                    self.say(f"{child.name}: ready" + (f" at {child.url}" if child.url else ""))
            waiting = [c.name for c in self.children if not c.ready]
            if waiting and time.monotonic() - started > ready_timeout_s:
                raise FinmedError(f"{', '.join(waiting)} did not answer within {ready_timeout_s:.0f} s; see its log")
            time.sleep(poll_s)
        return None

    def stop(self, *, grace_s: float = GRACE_S) -> None:
        """SIGTERM every running child at once, wait up to `grace_s` for all, SIGKILL what is left."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.terminate()
        deadline = time.monotonic() + grace_s
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name}: did not stop within {grace_s:.0f} s; killed")
                child.process.kill()
                child.process.wait()
        for log in self._logs:
            log.close()

    def run(self) -> int:
        """Start, watch until Ctrl-C/SIGTERM or a child's exit, stop all; 0 on a signal.

        Raises:
            FinmedError: a child exited on its own (naming it, its status and its log).
        """
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        dead = None
        try:
            self.start()
            dead = self.watch()
        finally:
            try:
                self.stop()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        if dead is not None:
            assert dead.process is not None
            raise FinmedError(
                f"{dead.name} exited with status {dead.process.returncode}; the others were stopped; see {dead.log}"
            )
        self.say("stopped: " + ", ".join(c.name for c in self.children))
        return 0


CHILDREN = ("server", "worker", "app")


def progress_printer() -> Callable[[str], None]:
    """One line per step, with seconds since the command started (the first-run and second-start timings)."""
    from rich.markup import escape

    from core.console import console

    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {escape(message)}", highlight=False, soft_wrap=True)

    return say


def print_passwords(result: BootstrapResult) -> None:
    """Print the passwords of users created by this run, once (they are not stored anywhere)."""
    from core.console import console

    for username, (role, password) in result.passwords.items():
        console.print(
            f"created user {username} ({role}); password (shown once): [bold]{password}[/]",
            highlight=False,
            soft_wrap=True,
        )


def _parse_only(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHILDREN]
    if not names or unknown:
        raise FinmedError(f"--only {only!r}: name one or more of {', '.join(CHILDREN)} (comma-separated)")
    return names


def _registry_children(
    settings: Settings, names: list[str], *, commands: set[str], app_port: int, api_port: int, address: str
) -> list[Child]:
    """`--only`: the named children, with the server's config rewritten from the registry (no bootstrap)."""
    from core.bootstrap import SERVE_FILE, write_serve_config
    from core.db.engine import make_engine, session_scope
    from core.db.migrate import require_current

    children = []
    if "server" in names:
        engine = make_engine(settings.db_url)
        require_current(engine)
        # Per process: replicas sharing a data volume never read each other's half-written config.
        target = settings.data_dir / "run" / f"{SERVE_FILE.removesuffix('.yaml')}-{os.getpid()}.yaml"
        with session_scope(engine) as session:
            config, notes = write_serve_config(session, target)
        engine.dispose()
        if config is None:
            raise FinmedError("no servable model version is registered: " + ("; ".join(notes) or "run `finmed demo`"))
        children.append(server_child(settings, config, port=api_port, address=address))
    if "worker" in names:
        if "worker" not in commands:
            raise FinmedError("this install has no `finmed worker` command: drop worker from --only")
        children.append(worker_child(settings))
    if "app" in names:
        children.append(app_child(settings, port=app_port, address=address))
    return children


def run_suite(
    settings: Settings,
    *,
    commands: Iterable[str],
    app_port: int,
    api_port: int,
    address: str = "127.0.0.1",
    tiny: bool = False,
    prepare_only: bool = False,
    only: str | None = None,
) -> int:
    """`finmed up`: bootstrap, print passwords, start server + worker + app, run until Ctrl-C.

    Args:
        commands: the `finmed` sub-commands this install has (the worker starts only if `worker` is one).
        only: comma-separated children to run without the bootstrap (compose runs one per container).

    Returns:
        The exit status (0 after Ctrl-C or SIGTERM).

    Raises:
        FinmedError: a bootstrap step failed, or a child exited on its own or never became ready.
    """
    from core.bootstrap import bootstrap

    say = progress_printer()
    if only:
        children = _registry_children(
            settings, _parse_only(only), commands=set(commands), app_port=app_port, api_port=api_port, address=address
        )
    else:
        result = bootstrap(settings, tiny=tiny, progress=say)
        result.engine.dispose()
        print_passwords(result)
        if prepare_only:
            return 0
        children = plan_children(
            settings, result, commands=commands, app_port=app_port, api_port=api_port, address=address, say=say
        )
    say("starting " + ", ".join(c.name for c in children) + " (Ctrl-C stops them all)")
    return Supervisor(children, say=say).run()
