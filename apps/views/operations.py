"""Operations page (engineer, admin): training runs with loss and gradient-health charts, quantization reports,
model versions with promote and rollback (refused with the gate's reason), a model server's /metrics, and the data
filter's reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from apps.auth import SignedIn
from apps.common import acting, fmt_time, page
from core.data.reports import list_filter_reports, reason_rows, tier_rows
from core.errors import FinmedError
from core.finetune.runs import list_runs, read_metrics
from core.models.registry import check_accuracy_gate, list_versions, promote
from core.models.rollback import rollback
from core.quantize.reports import list_reports, report_rows
from core.serving.scrape import scrape
from core.settings import get_settings

HEALTH = ("grad_norm", "vanishing_ratio", "tiny_grad_share")


def _root() -> Path:
    return Path(get_settings().data_dir)


def _training(signed: SignedIn) -> None:
    with acting(signed) as (_session, user):
        runs = list_runs(user=user, root=_root())
    if not runs:
        st.info(f"No training runs under {_root()}: start one with `finmed train CONFIG.yaml`.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": r.name,
                    "steps": r.steps,
                    "last loss": r.last_loss,
                    "eval loss": r.eval.get("eval_loss"),
                    "updated": fmt_time(r.modified),
                }
                for r in runs
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    chosen = st.selectbox("Run", [r.name for r in runs], key="ops_run")
    run = next(r for r in runs if r.name == chosen)
    with acting(signed) as (_session, user):
        rows = pd.DataFrame(read_metrics(user=user, run_dir=run.path))
    if rows.empty or "step" not in rows:
        st.info(f"{run.name} has not finished a step yet.")
        return
    rows = rows.set_index("step")
    left, right = st.columns(2)
    left.markdown("**Loss**")
    left.line_chart(rows[[c for c in ("loss", "eval_loss") if c in rows]])
    right.markdown("**Gradient health**")
    health = [c for c in HEALTH if c in rows]
    if health:
        right.line_chart(rows[health])
    else:
        right.info("This run logged no gradient-health figures.")
    if "layer_grad_norm" in rows:
        layers = pd.DataFrame(rows["layer_grad_norm"].dropna().tolist(), index=rows["layer_grad_norm"].dropna().index)
        if not layers.empty:
            st.markdown("**Gradient norm per layer group**")
            st.line_chart(layers)


def _quantization(signed: SignedIn) -> None:
    with acting(signed) as (_session, user):
        reports = list_reports(user=user, root=_root())
    if not reports:
        st.info(f"No quantization reports under {_root()}: run `finmed quant-report --run RUN --eval E --out DIR`.")
        return
    labels = [str(folder.relative_to(_root())) for folder, _ in reports]
    chosen = st.selectbox("Report", labels, key="ops_report")
    folder, report = reports[labels.index(chosen)]
    frame = pd.DataFrame(report_rows(report))
    st.caption(
        f"{report.get('model', '?')} ({report.get('method', '?')}), metric {report.get('metric', '?')}, "
        f"{report.get('n_eval', '?')} eval examples"
    )
    st.dataframe(frame, hide_index=True, width="stretch")
    numeric = [c for c in ("task_metric", "size_mb") if c in frame]
    if numeric:
        st.bar_chart(frame.set_index("precision")[numeric], stack=False)


def _versions(signed: SignedIn) -> None:
    with acting(signed) as (session, user):
        versions = list_versions(session, user=user)
        frame = pd.DataFrame(
            [
                {
                    "name": v.name,
                    "version": v.version,
                    "status": v.status,
                    "precision": v.precision,
                    "method": v.method,
                    "drop (pts)": v.metrics.get("task_drop_pts"),
                    "gate": check_accuracy_gate(v).message,
                    "created": fmt_time(v.created_at),
                }
                for v in versions
            ]
        )
    if frame.empty:
        st.info("No model versions registered: `finmed model register` (or `finmed up` registers the defaults).")
        return
    st.dataframe(frame, hide_index=True, width="stretch")
    cols = st.columns(3)
    name = cols[0].selectbox("Model", sorted(frame["name"].unique()), key="ops_model")
    numbers = frame.loc[frame["name"] == name, "version"].tolist()
    version = cols[1].selectbox("Version", numbers, key="ops_version")
    act_promote = cols[2].button("Promote", key="ops_promote")
    act_rollback = cols[2].button("Roll back", key="ops_rollback")
    if not (act_promote or act_rollback):
        return
    try:
        with acting(signed) as (session, user):
            if act_promote:
                done = promote(session, user=user, name=name, version=int(version))
            else:
                done = rollback(session, user=user, name=name)
            message = f"{name} v{done.version} is now promoted."
    except FinmedError as exc:
        st.error(f"Refused: {exc}")
        return
    st.success(message)


def _serving(signed: SignedIn) -> None:
    settings = get_settings()
    cols = st.columns([3, 2, 1])
    url = cols[0].text_input("Model server", value=f"http://127.0.0.1:{settings.api_port}", key="ops_serve_url")
    key = cols[1].text_input("API key", type="password", key="ops_serve_key")
    if not cols[2].button("Read /metrics", key="ops_scrape"):
        st.caption("Start a server with `finmed serve`, then read its metrics here.")
        return
    with acting(signed) as (_session, user):
        samples = scrape(user=user, url=url, api_key=key or None)
    frame = pd.DataFrame(
        [
            {"metric": s.name, "labels": ", ".join(f"{k}={v}" for k, v in s.labels.items()), "value": s.value}
            for s in samples
            if s.name.startswith("finmed_")
        ]
    )
    if frame.empty:
        st.info("The server exposes no finmed_ metrics yet: send it a request first.")
        return
    st.dataframe(frame, hide_index=True, width="stretch")


def _data_filter(signed: SignedIn) -> None:
    with acting(signed) as (_session, user):
        reports = list_filter_reports(user=user, root=_root())
    if not reports:
        st.info(
            f"No data filter reports under {_root()}: run "
            "`finmed data filter --in records.jsonl --out DIR/clean.jsonl --domain finance` with DIR inside it."
        )
        return
    labels = [str(folder.relative_to(_root())) for folder, _ in reports]
    chosen = st.selectbox("Filter report", labels, key="ops_filter_report")
    _folder, report = reports[labels.index(chosen)]
    st.caption(
        f"{report.get('input', '?')} -> {report.get('output', '?')} ({report.get('domain', '?')}): "
        f"{report.get('records_in', '?')} records in, {report.get('records_out', '?')} kept; "
        f"rejected records with their line and reason in {report.get('rejected', '?')}"
    )
    tiers = pd.DataFrame(tier_rows(report))
    st.dataframe(tiers, hide_index=True, width="stretch")
    if not tiers.empty:
        st.bar_chart(tiers.set_index("tier")[["passed", "dropped", "flagged"]])
    reasons = pd.DataFrame(reason_rows(report))
    if reasons.empty:
        st.caption("No record was dropped or flagged.")
    else:
        st.dataframe(reasons, hide_index=True, width="stretch")


@page
def render(signed: SignedIn) -> None:
    """Draw the five sections as tabs."""
    st.title("Operations")
    tabs = st.tabs(["Training runs", "Quantization", "Model versions", "Serving", "Data filter"])
    sections = (_training, _quantization, _versions, _serving, _data_filter)
    for tab, section in zip(tabs, sections, strict=True):
        with tab:
            try:
                section(signed)
            except FinmedError as exc:
                st.error(str(exc))
