"""Job services: submit, read, cancel (for people), and claim, beat, finish (for `finmed worker`).

People's calls take a session and the acting user (keyword-only) and check the role; the worker's calls act for no
user. Claiming is safe with many workers: PostgreSQL skips rows another transaction has locked (`FOR UPDATE SKIP
LOCKED`), SQLite takes the write lock first (`BEGIN IMMEDIATE`), as in core/review/queue.py. Callers commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import require_role
from core.db.base import utcnow
from core.db.tables import ROLES, Job, User
from core.db.write_lock import begin_write
from core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from core.jobs.kinds import JobKind, all_kinds, get_kind

OPEN = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
STALE_AFTER = timedelta(seconds=60)
MAX_ATTEMPTS = 3


def _may_see(user: User, job: Job, kind: JobKind | None) -> bool:
    if user.role == "admin" or job.created_by == user.id:
        return True
    return kind is not None and kind.shared and (not kind.roles or user.role in kind.roles)


def submit(session: Session, *, user: User, kind: str, params: dict[str, Any] | None = None) -> Job:
    """Queue a job of `kind` with JSON `params` for the worker.

    A second submission of the same kind and parameters by the same user while the first is still queued or running
    returns the first job: a page that reloads, or a button pressed twice, never starts the work twice.

    Raises:
        ValidationError: unknown kind, or parameters that are not JSON.
        PermissionDenied: the role may not submit this kind.
    """
    job_kind = get_kind(kind)
    require_role(user, *(job_kind.roles or ROLES), action=f"start a '{kind}' job")
    params = dict(params or {})
    try:
        canonical = json.loads(json.dumps(params, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"parameters of a '{kind}' job must be JSON: {exc}") from None
    begin_write(session)
    for job in session.scalars(
        select(Job).where(Job.kind == kind, Job.created_by == user.id, Job.status.in_(OPEN)).order_by(Job.id)
    ):
        if job.params == canonical:
            return job
    job = Job(kind=kind, params=canonical, created_by=user.id, status="queued", message="waiting for a worker")
    session.add(job)
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="job.submitted",
        subject_type="job",
        subject_id=str(job.id),
        payload={"kind": kind, "params": canonical},
    )
    return job


def get_job(session: Session, *, user: User, job_id: int) -> Job:
    """One job the user may see (their own; shared kinds for their role; every job for admin).

    Raises:
        NotFoundError: no such job.
        PermissionDenied: someone else's job.
    """
    require_role(user, *ROLES, action="read a job")
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    if not _may_see(user, job, all_kinds().get(job.kind)):
        raise PermissionDenied(f"job {job_id} belongs to another user")
    return job


def list_jobs(session: Session, *, user: User, kind: str | None = None, limit: int = 50) -> list[Job]:
    """Jobs the user may see, newest first."""
    require_role(user, *ROLES, action="list jobs")
    query = select(Job).order_by(Job.id.desc())
    if kind is not None:
        query = query.where(Job.kind == kind)
    if user.role != "admin":
        shared = [name for name, k in all_kinds().items() if k.shared and (not k.roles or user.role in k.roles)]
        query = query.where(or_(Job.created_by == user.id, Job.kind.in_(shared)))
    return list(session.scalars(query.limit(limit)))


def latest_finished(session: Session, *, user: User, kind: str) -> Job | None:
    """The newest succeeded or failed job of `kind` the user may see (e.g. the last chain verification)."""
    job_kind = get_kind(kind)
    require_role(user, *(job_kind.roles or ROLES), action=f"read '{kind}' jobs")
    query = select(Job).where(Job.kind == kind, Job.status.in_(("succeeded", "failed")))
    if user.role != "admin" and not job_kind.shared:
        query = query.where(Job.created_by == user.id)
    return session.scalar(query.order_by(Job.finished_at.desc(), Job.id.desc()).limit(1))


def cancel(session: Session, *, user: User, job_id: int) -> Job:
    """Cancel a queued job at once, or ask the worker to stop a running one at its next progress report.

    Raises:
        ConflictError: the job already finished.
        PermissionDenied: someone else's job (admins may cancel any).
    """
    job = get_job(session, user=user, job_id=job_id)
    if job.created_by != user.id and user.role != "admin":
        raise PermissionDenied(f"job {job_id} was started by another user: only they or an admin may cancel it")
    begin_write(session)
    session.refresh(job)
    if job.status in FINISHED:
        raise ConflictError(f"job {job_id} already {job.status}")
    if job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
        job.message = f"cancelled by {user.username} before it started"
    else:
        job.cancel_requested = True
        job.message = f"cancel requested by {user.username}"
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="job.cancelled",
        subject_type="job",
        subject_id=str(job.id),
        payload={"kind": job.kind, "was": "queued" if job.status == "cancelled" else "running"},
    )
    return job


# --- the worker's side -------------------------------------------------------------------------------------------


def claim_next(
    session: Session,
    *,
    worker: str,
    kinds: Iterable[str],
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> Job | None:
    """Take the oldest queued job of `kinds` (or a running one whose worker stopped beating) and mark it running.

    A job claimed MAX_ATTEMPTS times without finishing is marked failed instead of being tried again.
    """
    now = now or utcnow()
    names = list(kinds)
    begin_write(session)
    stale = and_(Job.status == "running", or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < now - stale_after))
    query = select(Job).where(Job.kind.in_(names), or_(Job.status == "queued", stale)).order_by(Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    while (job := session.scalar(query)) is not None:
        if job.status == "running" and (job.cancel_requested or job.attempts >= MAX_ATTEMPTS):
            job.status = "cancelled" if job.cancel_requested else "failed"
            job.error = "" if job.cancel_requested else f"its worker stopped during {job.attempts} attempt(s)"
            job.finished_at = now
            session.flush()
            continue
        job.status = "running"
        job.worker = worker
        job.attempts += 1
        job.started_at = now
        job.heartbeat_at = now
        job.message = f"started by {worker}"
        session.flush()
        return job
    return None


def beat(session: Session, *, job_id: int, progress: float | None = None, message: str | None = None) -> bool:
    """Refresh the job's heartbeat (and progress, message); returns whether a cancel was requested."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != "running":
        return True
    job.heartbeat_at = utcnow()
    if progress is not None:
        job.progress = progress
    if message is not None:
        job.message = message
    session.flush()
    return bool(job.cancel_requested)


def finish(session: Session, *, job_id: int, status: str, result: dict[str, Any] | None = None, error: str = "") -> Job:
    """Record the end of a running job: succeeded (with its result), failed (with the error), cancelled, or
    queued again (the worker stopped before the job ended)."""
    if status not in (*FINISHED, "queued"):
        raise ValidationError(f"a job cannot finish as '{status}'")
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    job.status = status
    job.error = error
    if status == "queued":
        job.message = "put back in the queue: its worker stopped"
        job.heartbeat_at = None
    else:
        job.finished_at = utcnow()
        job.message = {"succeeded": "done", "failed": "failed", "cancelled": "cancelled"}[status]
        if status == "succeeded":
            job.progress = 1.0
            job.result = json.loads(json.dumps(result or {}, default=str))
    session.flush()
    return job


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite returns naive UTC


def elapsed_s(job: Job) -> float | None:
    """Seconds the job ran (so far, for a running one)."""
    if job.started_at is None:
        return None
    end = job.finished_at or utcnow()
    return (_utc(end) - _utc(job.started_at)).total_seconds()
