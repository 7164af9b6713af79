"""Risk scoring page (analysts): load transactions, map their columns onto canonical fields, see rejected rows by
number and odd fields counted, score (here, or as a background job with progress for large files), see the levels
with the fraud-rate band each promises, the risk-level mix and flagged transactions per day, filter and page the
assessments, open one transaction (its features, reasons, scores and similar labelled cases), store and route to
review, download, ask the LLM to explain a flagged row, and read a backtest's results with its charts.

The file comes from an upload or from a path on the server (large exports usually sit on a shared drive); both go
through the same mapping form and the same service (domains/finance/service.py) as `finmed finance score --map ...`
and POST /v1/finance/score; the background job (domains/finance/jobs.py) calls that service in `finmed worker`.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.auth.roles import acting_user
from core.db.engine import get_engine, session_scope
from core.errors import FinmedError
from core.jobs import service as jobs
from core.jobs.panel import acting, job_caption, job_panel
from domains.finance.features import FEATURES
from domains.finance.ingest import CANONICAL, REQUIRED, read_table
from domains.finance.jobs import KIND as SCORE_KIND
from domains.finance.jobs import load_result, scored_dir

NONE = "(none)"
RESULT_KEY = "finance_scored"
ROLES = ("analyst", "engineer", "admin")
FLAGGED_FROM = 3  # the review policy's default risk_threshold: levels an analyst reviews
PAGE_SIZES = (100, 1000, 10000)


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
        here = st.form_submit_button("Validate and score here")
        background = st.form_submit_button("Score in the background (large files; `finmed worker` runs it)")
    if not (here or background):
        return None
    st.session_state["finance_budget"] = int(budget)
    st.session_state["finance_adapter"] = adapter.strip()
    st.session_state["finance_background"] = bool(background)
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
        user = acting_user(session, user_id=user_id)
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


def _submit_job(signed: Any, upload: object, path_text: str, mapping: dict[str, str]) -> None:
    """Put the file where the worker can read it (uploads are saved under the data folder) and queue the job."""
    if upload is not None:
        folder = scored_dir() / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex[:12]}-{Path(str(upload.name)).name}"  # type: ignore[attr-defined]
        path.write_bytes(upload.getvalue())  # type: ignore[attr-defined]
    else:
        path = Path(path_text.strip()).expanduser().resolve()
    budget = int(st.session_state.get("finance_budget", -1))
    params = {
        "path": str(path),
        "mapping": mapping,
        "llm_budget": None if budget < 0 else budget,
        "adapter": st.session_state.get("finance_adapter") or "",
    }
    with acting(signed) as (session, user):
        job = jobs.submit(session, user=user, kind=SCORE_KIND, params=params)
        st.session_state["finance_job_opened"] = None
        st.session_state["finance_job_submitted"] = job.id
    st.rerun()


def _job_result(job: dict[str, Any]) -> None:
    """The last scoring job: its error, or its summary and (opened automatically when submitted here) its batch."""
    if job["status"] != "succeeded":
        st.error(f"Scoring job {job['id']} {job['status']}: {job['error'] or 'no result'} ({job_caption(job)})")
        return
    result = job["result"]
    counts = result["counts"]
    st.caption(
        f"Background scoring of {result['source']}: {counts['scored']} of {counts['input']} rows scored, "
        f"{counts['rejected']} rejected ({job_caption(job)})"
    )
    opened = st.session_state.get("finance_job_opened")
    if opened == job["id"]:
        return
    if st.session_state.get("finance_job_submitted") == job["id"] or st.button(
        f"Open the scored batch of job {job['id']}", key="finance_job_open"
    ):
        st.session_state[RESULT_KEY] = {"result": load_result(result), "stored": False}
        st.session_state["finance_job_opened"] = job["id"]


def _filtered(scored: pd.DataFrame) -> pd.DataFrame:
    """The assessments an analyst asked for: levels, account, odd fields only; highest risk first."""
    cells = st.columns(3)
    levels = cells[0].multiselect("Levels", list(range(6)), default=list(range(6)), key="finance_f_levels")
    account = cells[1].text_input("Account contains", key="finance_f_account").strip()
    odd_only = cells[2].checkbox("Only rows with an odd field", key="finance_f_odd")
    keep = scored["risk_level"].isin(levels)
    if account:
        keep &= scored["account_id"].astype(str).str.contains(account, regex=False)
    if odd_only:
        keep &= scored["odd_fields"].astype(str) != ""
    return scored[keep].sort_values(["risk_level", "fused_score"], ascending=False)


def _charts(scored: pd.DataFrame, rows: pd.DataFrame) -> None:
    mix = scored["risk_level"].value_counts().reindex(range(6), fill_value=0)
    cells = st.columns(2)
    cells[0].caption("Risk-level mix (transactions per level)")
    cells[0].bar_chart(pd.DataFrame({"transactions": mix.to_numpy()}, index=pd.Index(range(6), name="level")))
    if "timestamp" in rows.columns and len(rows) == len(scored):
        days = pd.to_datetime(rows["timestamp"]).dt.floor("D").to_numpy()
        flagged = pd.Series(scored["risk_level"].to_numpy() >= FLAGGED_FROM, index=days)
        per_day = flagged.groupby(level=0).agg(["sum", "size"]).rename(columns={"sum": "flagged", "size": "all"})
        cells[1].caption(f"Flagged (level {FLAGGED_FROM} or above) per day")
        cells[1].line_chart(per_day[["flagged"]])


def _similar(features: pd.DataFrame) -> None:
    """Labelled past cases nearest to the transaction (the retrieval store finmed up indexes)."""
    from core.retrieval.store import open_store
    from core.settings import get_settings
    from domains.finance.bootstrap import CASES
    from domains.finance.similar import StoreSimilarCases

    store = open_store(get_settings())
    if CASES not in store.list_collections():
        st.caption(
            f"No labelled cases indexed (collection {CASES}): `finmed up` or `finmed finance index-cases` adds them."
        )
        return
    cases = StoreSimilarCases(store, CASES).similar(features, k=3)[0]
    st.dataframe(
        pd.DataFrame([{"level": c.level, "reasons": ", ".join(c.reasons), "case": c.summary} for c in cases]),
        hide_index=True,
    )


def _detail(result: Any, shown: pd.DataFrame) -> None:
    """One transaction: what the model saw (features), what it said (scores, level, band, reasons), similar cases."""
    if shown.empty:
        return
    choice = st.selectbox("Open a transaction", shown["transaction_id"].astype(str).tolist(), key="finance_detail")
    scored = result.assessments
    pos = int(np.flatnonzero(scored["transaction_id"].astype(str).to_numpy() == choice)[0])
    rec, row = scored.iloc[pos], result.rows.iloc[pos]
    level = int(rec["risk_level"])
    band = result.bands[level] if result.bands else None
    cells = st.columns(2)
    cells[0].markdown(
        f"**Level {level}**"
        + (f" (promised fraud rate {100 * band[0]:.2f}%-{100 * band[1]:.2f}%)" if band else "")
        + f"  \nfused score {float(rec['fused_score']):.4f}, numeric score {float(rec['numeric_score']):.4f}"
        + f"  \nreasons: {rec['reasons'] or 'none'}"
        + (f"  \nodd fields: {rec['odd_fields']}" if rec["odd_fields"] else "")
    )
    if pd.notna(rec.get("llm_answer")):
        cells[0].text(f"LLM answer (level {rec['llm_level']}):\n{rec['llm_answer']}")
    fields = [c for c in ("timestamp", "amount", "currency", "country", "mcc", "merchant_id") if c in row.index]
    detail = {**{f: row[f] for f in fields}, **{f: row[f] for f in FEATURES if f in row.index}}
    cells[1].dataframe(
        pd.DataFrame({"field": list(detail), "value": [str(v) for v in detail.values()]}), hide_index=True
    )
    st.caption("Similar labelled cases")
    _similar(result.rows.iloc[[pos]])


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
    _charts(scored, result.rows)
    shown = _filtered(scored)
    size = st.selectbox("Rows per page", PAGE_SIZES, index=1, key="finance_page_size")
    pages = max(1, -(-len(shown) // size))
    number = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="finance_page")) if pages > 1 else 1
    window = shown.iloc[(number - 1) * size : number * size]
    st.caption(f"{len(shown)} of {len(scored)} assessments match; showing {len(window)}.")
    st.dataframe(
        window[["transaction_id", "account_id", "risk_level", "fused_score", "numeric_score", "llm_level", "reasons"]],
        hide_index=True,
    )
    # the CSV is built when the button is clicked, not on every rerun: 100k rows take ~0.4 s to write
    st.download_button("Download scored CSV", lambda: scored.to_csv(index=False), "scored.csv", "text/csv")
    if state["stored"]:
        st.info(state["stored"])
    elif st.button("Store and route to review", key="finance_store"):
        from domains.finance.service import store_and_route

        with session_scope(get_engine()) as session:
            routed = store_and_route(session, user=acting_user(session, user_id=user_id), result=result)
        state["stored"] = f"Stored {routed['stored']} assessments; {routed['queued']} queued for review."
        st.rerun()
    _detail(result, window)
    _explain(result, scored)


def _backtest() -> None:
    """A backtest's results (`finmed finance backtest --out DIR`): metrics, calibration per level, its charts."""
    with st.expander("Backtest results"):
        folder = st.text_input("Backtest output folder (`finmed finance backtest --out`)", key="finance_bt_dir")
        if not folder.strip():
            st.caption("Give the folder a backtest wrote to see its metrics, PR curve and calibration chart.")
            return
        out = Path(folder.strip()).expanduser()
        if not (out / "metrics.json").is_file():
            st.error(f"No metrics.json in {out}: run `finmed finance backtest --out {out}` first.")
            return
        m = json.loads((out / "metrics.json").read_text())
        st.dataframe(
            pd.DataFrame(
                [{"variant": v, **{k: m[v].get(k) for k in ("auc", "average_precision", "precision", "recall", "fpr")}}
                 for v in ("numeric", "llm", "fused")]
            ),
            hide_index=True,
        )  # fmt: skip
        levels = pd.DataFrame(m.get("levels") or [])
        if len(levels):
            levels["promised band"] = [
                f"{100 * b[0]:.2f}%-{100 * b[1]:.2f}%" if b else "fixed edges" for b in levels["band"]
            ]
            st.dataframe(levels.drop(columns=["band"]), hide_index=True)
        if "fusion" in m:
            st.caption(f"Fusion: {m['fusion'].get('reason', '')}")
        cells = st.columns(2)
        for cell, name in zip(cells, ("pr_curve.png", "calibration.png"), strict=True):
            if (out / name).is_file():
                cell.image(str(out / name))


def render(user: Any) -> None:
    """Draw the page for the signed-in `user` (id, username, role); the app shows it to ROLES only."""
    st.title("Risk scoring")
    if user is None or user.role not in ROLES:
        st.error("Risk scoring is for analysts and engineers.")
        return
    upload = st.file_uploader("Transactions (.csv or .parquet)", type=["csv", "parquet", "pq"])
    path_text = st.text_input("…or a file path on the server", key="finance_path")
    try:
        job_panel(user, kind=SCORE_KIND, params=None, start_label="", key="finance_job", on_result=_job_result)
        raw = _load(upload, path_text)
        if raw is None:
            st.info("Upload a file or give a path to start.")
            _results(user.id)
            _backtest()
            return
        st.caption(f"{len(raw)} rows, columns: {', '.join(map(str, raw.columns))}")
        mapping = _mapping_form(raw)
        if mapping is not None and st.session_state.get("finance_background"):
            _submit_job(user, upload, path_text, mapping)
        elif mapping is not None:
            _score(raw, mapping, user.id)
        _results(user.id)
        _backtest()
    except FinmedError as exc:
        st.error(str(exc))
