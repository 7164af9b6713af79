"""A page's view of one background job kind: start it, watch its progress (refreshed every second while it runs),
cancel it, and see its last result; the job lives in the database, so a reload finds it again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from apps.auth import SignedIn
from apps.common import acting, fmt_time
from core.jobs import service


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
