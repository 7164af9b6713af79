"""`finmed worker` as a process: it runs a job queued from another process and stops cleanly on SIGTERM."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.auth.users import create_user
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import Job
from core.jobs import service


def test_worker_runs_a_job_and_stops_on_sigterm() -> None:
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        user = create_user(session, username="cora", role="compliance", password="long-enough")
        job_id = service.submit(session, user=user, kind="audit.verify").id
    finmed = shutil.which("finmed", path=str(Path(sys.executable).parent)) or "finmed"
    proc = subprocess.Popen(
        [finmed, "worker", "--poll", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        status = "queued"
        while time.monotonic() < deadline and status != "succeeded":
            time.sleep(0.3)
            with session_scope(engine) as session:
                status = session.get(Job, job_id).status
        assert status == "succeeded"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "worker stopped" in output
    with session_scope(engine) as session:
        assert session.get(Job, job_id).result["ok"] is True
