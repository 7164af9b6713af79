"""A page's view of one background job kind: start it, watch its progress (refreshed every second while it runs),
cancel it, and see its last result; the job lives in the database, so a reload finds it again.

It lives in the jobs room (not apps/) so that domain pages, which may not import apps, draw their jobs the same way
as the app's own pages. `signed` is the signed-in person as pages see them: anything with the user's `id`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import streamlit as st

from core.auth.roles import acting_user
from core.db.engine import get_engine, session_scope
from core.jobs import service

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.db.tables import User


class SignedIn(Protocol):
    """The signed-in person (apps.auth.SignedIn): only the user's id is needed here."""

    id: int


@contextmanager
def acting(signed: SignedIn) -> Iterator[tuple[Session, User]]:
    """A session (committed at the end) and the signed-in user's row in it."""
    with session_scope(get_engine()) as session:
        yield session, acting_user(session, user_id=signed.id)


def fmt_time(value: Any) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM:SS UTC', or '-'."""
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value is not None else "-"


def _snapshot(job: Any) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.id,
        "status": job.status,
        "progress": float(job.progress),
        "message": job.message,
        "error": job.error,
        "result": dict(job.result or {}),
        "created": job.created_at,
        "finished": job.finished_at,
        "seconds": service.elapsed_s(job),
        "cancel_requested": job.cancel_requested,
    }


def _open_job(signed: SignedIn, kind: str) -> dict[str, Any] | None:
    with acting(signed) as (session, user):
        jobs = service.list_jobs(session, user=user, kind=kind, limit=5)
        return _snapshot(next((j for j in jobs if j.status in service.OPEN), None))


def last_finished(signed: SignedIn, kind: str) -> dict[str, Any] | None:
    """The newest finished (succeeded or failed) job of `kind` the user may see."""
    with acting(signed) as (session, user):
        return _snapshot(service.latest_finished(session, user=user, kind=kind))


def job_panel(
    signed: SignedIn,
    *,
    kind: str,
    params: dict[str, Any] | None,
    start_label: str,
    key: str,
    on_result: Callable[[dict[str, Any]], None],
    empty: str = "",
) -> None:
    """Draw the start button, the running job's progress, or the last result (via `on_result(snapshot)`)."""

    @st.fragment(run_every=1.0)
    def running() -> None:
        job = _open_job(signed, kind)
        if job is None:
            st.rerun()  # it finished: redraw the whole page with its result
            return
        state = "waiting for a worker (`finmed worker`)" if job["status"] == "queued" else job["message"]
        st.progress(job["progress"], text=f"Job {job['id']} {job['status']}: {state}")
        if not job["cancel_requested"] and st.button("Cancel", key=f"{key}_cancel"):
            with acting(signed) as (session, user):
                service.cancel(session, user=user, job_id=job["id"])
            st.rerun()

    is_open = _open_job(signed, kind) is not None
    if is_open:
        running()
    elif params is not None and st.button(start_label, key=f"{key}_start"):
        with acting(signed) as (session, user):
            service.submit(session, user=user, kind=kind, params=params)
        st.rerun()
    last = last_finished(signed, kind)
    if last is not None:
        on_result(last)
    elif not is_open and empty:
        st.info(empty)


def job_caption(job: dict[str, Any]) -> str:
    """'job 12, finished 2026-12-01 10:00:00 UTC in 0.4 s'."""
    took = f" in {job['seconds']:.1f} s" if job["seconds"] is not None else ""
    return f"job {job['id']}, finished {fmt_time(job['finished'])}{took}"
