"""Status page: what `finmed doctor` shows, for every signed-in role."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.doctor import run_checks
from core.settings import get_settings


def render() -> None:
    """Draw the health table and the effective settings."""
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
