"""`finmed up`: prepare the embedded default (migrate, base model, first admin) and run the app until Ctrl-C."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.auth.users import count_users, create_user, generate_password
from core.console import console
from core.db import migrate
from core.db.engine import make_engine, session_scope
from core.errors import FinmedError
from core.models.default import pull_default
from core.settings import Settings

ADMIN_NAME = "admin"


def prepare(settings: Settings) -> str | None:
    """Migrate the database, prepare the default model and create the first admin.

    Returns:
        The new admin's password when one was created (shown once), else None.
    """
    engine = make_engine(settings.db_url)
    with console.status("migrating the database"):
        migrate.upgrade(engine)
    if settings.base_model == "default":
        with console.status("preparing the default base model") as status:
            pull_default(settings.models_dir, progress=lambda msg: status.update(msg))
    password = None
    with session_scope(engine) as session:
        if count_users(session) == 0:
            password = generate_password()
            create_user(session, username=ADMIN_NAME, role="admin", password=password, actor="finmed up")
    engine.dispose()
    return password


def app_script() -> Path:
    """Path of the Streamlit entry script (located, not imported: core never imports apps)."""
    spec = importlib.util.find_spec("apps")
    folders = list(spec.submodule_search_locations or []) if spec else []
    script = Path(folders[0]) / "main.py" if folders else None
    if script is None or not script.is_file():
        raise FinmedError("the apps package is not installed: run `make up` or `pip install -e .`")
    return script


def run_app(settings: Settings, *, port: int, address: str = "127.0.0.1") -> int:
    """Start Streamlit on `address:port` and wait; Ctrl-C (SIGINT) or SIGTERM stops it cleanly."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_script()),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    console.print(f"finmed app: http://{address}:{port}  (Ctrl-C stops it)")
    try:
        while child.poll() is None and not stopping:
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if stopping:
        console.print("stopped")
        return 0
    raise FinmedError(f"the app exited unexpectedly with status {child.returncode}")
