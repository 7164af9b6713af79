"""Risk scoring page (analysts): load transactions, map their columns onto canonical fields, see rejected rows by
number and odd fields counted, score, see the levels with the fraud-rate band each promises, store and route to
review, download, and ask the LLM to explain a flagged row.

The file comes from an upload or from a path on the server (large exports usually sit on a shared drive); both go
through the same mapping form and the same service (domains/finance/service.py) as `finmed finance score --map ...`
and POST /v1/finance/score.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.db.engine import get_engine, session_scope
from core.db.tables import User
from core.errors import FinmedError
from domains.finance.ingest import CANONICAL, REQUIRED, read_table

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
        budget = st.number_input(
            "LLM budget (transactions the LLM adjudicates; -1: the learned fusion decides)", min_value=-1, value=-1
        )
        adapter = st.text_input("Finance adapter run folder (for the LLM)", value="")
        submitted = st.form_submit_button("Validate and score")
    if not submitted:
        return None
    st.session_state["finance_budget"] = int(budget)
    st.session_state["finance_adapter"] = adapter.strip()
    return {name: column for name, column in chosen.items() if column != NONE}


def _llm_factory() -> Any:
    """The page's LLM (in-process, with the finance adapter named in the form), built only when needed."""
    adapter = st.session_state.get("finance_adapter") or None

    def make() -> Any:
        from domains.finance.llm import LocalLLM

        return LocalLLM(adapter=Path(adapter) if adapter else None)

    return make


def _score(raw: pd.DataFrame, mapping: dict[str, str], user_id: int) -> None:
    from domains.finance.service import score_batch

    budget = int(st.session_state.get("finance_budget", -1))
    bar = st.progress(0.0, text="LLM adjudication")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"LLM adjudication: {done} of {total}")

    with session_scope(get_engine()) as session:
        user = session.get(User, user_id)
        result = score_batch(
            session,
            user=user,
            frame=raw,
            mapping=mapping,
            llm=_llm_factory(),
            llm_budget=None if budget < 0 else budget,
            progress=progress,
            source="the file",
        )
    bar.empty()
    st.session_state[RESULT_KEY] = {"result": result, "stored": False}


def _levels(scored: pd.DataFrame, bands: list[tuple[float, float]] | None) -> pd.DataFrame:
    counts = scored["risk_level"].value_counts().reindex(range(6), fill_value=0)
    return pd.DataFrame(
        {
            "level": range(6),
            "transactions": counts.to_numpy(),
            "promised fraud rate": [f"{100 * lo:.2f}%-{100 * hi:.2f}%" for lo, hi in bands]
            if bands
            else ["fixed edges"] * 6,
        }
    )


def _explain(result: Any, scored: pd.DataFrame) -> None:
    from domains.finance.service import explain

    flagged = scored[scored["risk_level"] >= 2]
    if flagged.empty:
        return
    with st.expander("Ask the LLM about a flagged transaction (an explanation; the score stays)"):
        choice = st.selectbox("Transaction", flagged["transaction_id"].tolist(), key="finance_explain_tx")
        if st.button("Explain", key="finance_explain"):
            pos = int(np.flatnonzero(scored["transaction_id"].to_numpy() == choice)[0])
            answer = explain(result, llm=_llm_factory()(), positions=[pos])[0]
            st.write(answer["answer"] if answer["parse_ok"] else f"(not in the risk format) {answer['answer']}")


def _results(user_id: int) -> None:
    state = st.session_state.get(RESULT_KEY)
    if not state:
        return
    result = state["result"]
    scored = result.assessments
    bad = pd.DataFrame([{"row": b.row, "reason": b.reason} for b in result.rejected], columns=["row", "reason"])
    if len(bad):
        st.warning(f"{len(bad)} unscorable row(s) rejected; {len(scored)} row(s) scored.")
        st.dataframe(bad, hide_index=True)
    else:
        st.success(f"All {len(scored)} rows scored.")
    for line in result.summary_lines()[1:]:
        st.caption(line)
    if scored.empty:
        return
    st.subheader("Assessments")
    st.dataframe(_levels(scored, result.bands), hide_index=True)
    shown = scored.sort_values(["risk_level", "fused_score"], ascending=False)
    st.dataframe(
        shown[["transaction_id", "account_id", "risk_level", "fused_score", "numeric_score", "llm_level", "reasons"]],
        hide_index=True,
    )
    st.download_button("Download scored CSV", scored.to_csv(index=False), "scored.csv", "text/csv")
    if state["stored"]:
        st.info(state["stored"])
    elif st.button("Store and route to review", key="finance_store"):
        from domains.finance.service import store_and_route

        with session_scope(get_engine()) as session:
            routed = store_and_route(session, user=session.get(User, user_id), result=result)
        state["stored"] = f"Stored {routed['stored']} assessments; {routed['queued']} queued for review."
        st.rerun()
    _explain(result, scored)


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
            _score(raw, mapping, user.id)
        _results(user.id)
    except FinmedError as exc:
        st.error(str(exc))
