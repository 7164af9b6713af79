"""`finmed worker`: claim queued jobs, run them with a progress callback and a heartbeat, record result or error.

Stopping (SIGTERM, Ctrl-C) stops claiming; the running job is interrupted at its next progress report and put back
in the queue, so no job is lost and none is run twice to the end. A worker that dies without a word stops beating;
another worker claims its job again after STALE_AFTER.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable

from sqlalchemy import Engine

from core.db.engine import session_scope
from core.errors import FinmedError
from core.jobs import service
from core.jobs.context import JobCancelled, JobContext, JobInterrupted
from core.jobs.kinds import all_kinds

HEARTBEAT_S = 10.0
PROGRESS_EVERY_S = 0.25


class Worker:
    """Runs jobs of the registered kinds from the database, one at a time.

    Args:
        engine: the database.
        name: how the worker names itself in jobs.worker (default host:pid).
        kinds: the kinds it runs (default every registered kind).
        poll_s: seconds between looks at an empty queue.
        heartbeat_s: seconds between heartbeats of the running job.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str | None = None,
        kinds: Iterable[str] | None = None,
        poll_s: float = 1.0,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.engine = engine
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.kinds = list(kinds) if kinds is not None else None
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Stop claiming; interrupt the running job at its next progress report."""
        self.stopping.set()

    def run_forever(self) -> None:
        """Work until `stop()`."""
        while not self.stopping.is_set():
            if self.run_one() is None:
                self.stopping.wait(self.poll_s)

    def run_one(self) -> int | None:
        """Claim and run one job; returns its id, or None when nothing was queued."""
        kinds = all_kinds()
        names = self.kinds if self.kinds is not None else list(kinds)
        with session_scope(self.engine) as session:
            job = service.claim_next(session, worker=self.name, kinds=names)
            if job is None:
                return None
            job_id, kind, params, user_id = job.id, job.kind, dict(job.params), job.created_by
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            if self.stopping.is_set():
                raise JobInterrupted
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S and fraction < 1.0:
                return
            last[0] = now
            with session_scope(self.engine) as session:
                if service.beat(session, job_id=job_id, progress=fraction, message=message):
                    raise JobCancelled

        ctx = JobContext(job_id=job_id, kind=kind, params=params, user_id=user_id, engine=self.engine, report=report)
        done = threading.Event()
        beater = threading.Thread(target=self._beat, args=(job_id, done), daemon=True)
        beater.start()
        try:
            status, result, error = self._run(kinds[kind], ctx)
        finally:
            done.set()
            beater.join()
        with session_scope(self.engine) as session:
            service.finish(session, job_id=job_id, status=status, result=result, error=error)
        return job_id

    def _run(self, kind, ctx: JobContext) -> tuple[str, dict | None, str]:  # type: ignore[no-untyped-def]
        try:
            result = kind(ctx)
        except JobCancelled:
            return "cancelled", None, ""
        except JobInterrupted:
            return "queued", None, ""
        except FinmedError as exc:
            return "failed", None, str(exc)
        except Exception as exc:  # noqa: BLE001  (a job's bug must not stop the worker; the row says what happened)
            traceback.print_exc(file=sys.stderr)
            return "failed", None, f"internal error in job {ctx.job_id} ({ctx.kind}): {type(exc).__name__}: {exc}"
        if not isinstance(result, dict):
            return "failed", None, f"job kind {ctx.kind} returned {type(result).__name__}, not a result dict"
        return "succeeded", result, ""

    def _beat(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_s):
            try:
                with session_scope(self.engine) as session:
                    service.beat(session, job_id=job_id)
            except Exception:  # noqa: BLE001  (a missed beat is retried; the job itself reports real failures)
                traceback.print_exc(file=sys.stderr)
