"""Status page: what `finmed doctor` shows, and your background jobs; for every signed-in role."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.auth import SignedIn
from apps.common import acting, fmt_time, page
from core.doctor import run_checks
from core.jobs import service
from core.settings import get_settings


def _jobs(signed: SignedIn) -> None:
    st.subheader("Background jobs")
    with acting(signed) as (session, user):
        jobs = service.list_jobs(session, user=user, limit=20)
        frame = pd.DataFrame(
            [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "status": j.status,
                    "progress": f"{j.progress:.0%}",
                    "message": j.error or j.message,
                    "created": fmt_time(j.created_at),
                    "finished": fmt_time(j.finished_at),
                }
                for j in jobs
            ]
        )
    if frame.empty:
        st.info("No background jobs yet. Pages start them (e.g. audit verification); `finmed worker` runs them.")
        return
    if (frame["status"] == "queued").any():
        st.caption("Queued jobs wait for `finmed worker` (`finmed up` starts one).")
    st.dataframe(frame, hide_index=True, width="stretch")


@page
def render(signed: SignedIn) -> None:
    """Draw the health table, the effective settings and the user's jobs."""
    st.title("Status")
    settings = get_settings()
    checks = run_checks(settings)
    problems = [c for c in checks if not c.ok]
    if problems:
        st.warning(f"{len(problems)} problem(s): " + "; ".join(f"{c.name}: {c.detail}" for c in problems))
    else:
        st.success("All checks passed.")
    frame = pd.DataFrame([{"check": c.name, "state": "ok" if c.ok else "problem", "detail": c.detail} for c in checks])
    st.dataframe(frame, hide_index=True, width="stretch")
    _jobs(signed)
    st.subheader("Settings")
    st.json(
        {
            "data_dir": str(settings.data_dir),
            "database": settings.db_url.split("@")[-1],
            "base_model": settings.base_model,
            "vector_store": settings.weaviate_url or str(settings.lancedb_dir),
            "device": settings.device,
        }
    )
