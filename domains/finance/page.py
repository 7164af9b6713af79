"""Risk scoring page (analysts): load transactions, map their columns onto canonical fields, see bad rows by number,
score with the numeric screen (and the LLM cascade when a budget is given), store and route to review, download.

The file comes from an upload or from a path on the server (large exports usually sit on a shared drive); both go
through the same mapping form and the same validation as `finmed finance score --map ...`.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.db.engine import get_engine, session_scope
from core.db.tables import User
from core.errors import FinmedError
from domains.finance.ingest import CANONICAL, REQUIRED, apply_mapping, read_table, validate

NONE = "(none)"
RESULT_KEY = "finance_scored"
ROLES = ("analyst", "engineer", "admin")


def _load(upload: object, path_text: str) -> pd.DataFrame | None:
    if upload is not None:
        data = upload.getvalue()  # type: ignore[attr-defined]
        name = str(upload.name).lower()  # type: ignore[attr-defined]
        return (
            pd.read_parquet(io.BytesIO(data)) if name.endswith((".parquet", ".pq")) else pd.read_csv(io.BytesIO(data))
        )
    if path_text.strip():
        return read_table(Path(path_text.strip()).expanduser())
    return None


def _mapping_form(raw: pd.DataFrame) -> dict[str, str] | None:
    """The column-mapping form; returns {canonical field: column} when submitted."""
    columns = [NONE, *raw.columns]
    with st.form("finance_mapping"):
        st.caption("Map the file's columns onto the canonical fields (required: " + ", ".join(REQUIRED) + ").")
        chosen = {}
        cells = st.columns(3)
        for i, name in enumerate(CANONICAL):
            default = columns.index(name) if name in raw.columns else 0
            label = f"{name} *" if name in REQUIRED else name
            chosen[name] = cells[i % 3].selectbox(label, columns, index=default, key=f"finance_map_{name}")
        budget = st.number_input("LLM budget (transactions the LLM adjudicates)", min_value=0, value=0, step=1)
        adapter = st.text_input("Finance adapter run folder (for the LLM)", value="")
        submitted = st.form_submit_button("Validate and score")
    if not submitted:
        return None
    st.session_state["finance_budget"] = int(budget)
    st.session_state["finance_adapter"] = adapter.strip()
    return {name: column for name, column in chosen.items() if column != NONE}


def _score(raw: pd.DataFrame, mapping: dict[str, str]) -> None:
    from domains.finance.cli import default_numeric_path
    from domains.finance.features import compute_features
    from domains.finance.numeric import NumericModel
    from domains.finance.pipeline import CascadePolicy, score_frame

    data = validate(apply_mapping(raw, mapping, source="the file"))
    numeric = NumericModel.load(default_numeric_path())
    budget = int(st.session_state.get("finance_budget", 0))
    llm = None
    if budget > 0:
        from domains.finance.llm import LocalLLM

        adapter = st.session_state.get("finance_adapter") or None
        llm = LocalLLM(adapter=Path(adapter) if adapter else None)
    extra = [c for c in numeric.columns if c in data.extra_features]
    feats = compute_features(data.frame, extra) if not data.frame.empty else None
    scored = (
        score_frame(data.frame, numeric, llm=llm, policy=CascadePolicy(budget=budget, k_examples=0), features=feats)
        if feats is not None
        else pd.DataFrame()
    )
    st.session_state[RESULT_KEY] = {
        "bad": pd.DataFrame([{"row": b.row, "reason": b.reason} for b in data.bad], columns=["row", "reason"]),
        "scored": scored,
        "rows": data.frame,
        "feats": feats,
        "version": f"numeric:{default_numeric_path().name}" + (f"+llm:{llm.name}" if llm else ""),
        "stored": False,
    }


def _results(user_id: int) -> None:
    result = st.session_state.get(RESULT_KEY)
    if not result:
        return
    bad, scored = result["bad"], result["scored"]
    if len(bad):
        st.warning(f"{len(bad)} bad row(s) not scored; {len(scored)} good row(s) scored.")
        st.dataframe(bad, hide_index=True)
    else:
        st.success(f"All {len(scored)} rows valid and scored.")
    if scored.empty:
        return
    counts = scored["risk_level"].value_counts().reindex(range(6), fill_value=0)
    st.subheader("Assessments")
    st.bar_chart(counts.rename("transactions"))
    shown = scored.sort_values(["risk_level", "fused_score"], ascending=False)
    st.dataframe(
        shown[["transaction_id", "account_id", "risk_level", "fused_score", "numeric_score", "llm_level", "reasons"]],
        hide_index=True,
    )
    st.download_button("Download scored CSV", scored.to_csv(index=False), "scored.csv", "text/csv")
    if result["stored"]:
        st.info(result["stored"])
    elif st.button("Store and route to review", key="finance_store"):
        from domains.finance.features import with_features
        from domains.finance.routing import route_assessments
        from domains.finance.store import store_assessments

        rows = with_features(result["rows"], result["feats"])
        with session_scope(get_engine()) as session:
            user = session.get(User, user_id)
            store_assessments(session, scored=scored, batch_id=uuid.uuid4().hex, model_version=result["version"])
            routed = route_assessments(session, user=user, scored=scored, rows=rows, model_name=result["version"])
        result["stored"] = f"Stored {len(scored)} assessments; {routed['queued']} queued for review."
        st.rerun()


def render(user: Any) -> None:
    """Draw the page for the signed-in `user` (id, username, role); the app shows it to ROLES only."""
    st.title("Risk scoring")
    if user is None or user.role not in ROLES:
        st.error("Risk scoring is for analysts and engineers.")
        return
    upload = st.file_uploader("Transactions (.csv or .parquet)", type=["csv", "parquet", "pq"])
    path_text = st.text_input("…or a file path on the server", key="finance_path")
    try:
        raw = _load(upload, path_text)
        if raw is None:
            st.info("Upload a file or give a path to start.")
            return
        st.caption(f"{len(raw)} rows, columns: {', '.join(map(str, raw.columns))}")
        mapping = _mapping_form(raw)
        if mapping is not None:
            _score(raw, mapping)
        _results(user.id)
    except FinmedError as exc:
        st.error(str(exc))
