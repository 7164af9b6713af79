"""Audit trail page (compliance, admin): the last chain verification (a background job, not re-walked per click),
the audit log with filters, approval and override rates by model version and policy, and exports."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from apps.auth import SignedIn
from apps.common import acting, fmt_time, page
from core.audit.read import read_events
from core.audit.verify_job import KIND as VERIFY_KIND
from core.jobs.panel import job_caption, job_panel
from core.review.exports import export_items, to_training
from core.review.read import decision_rates
from core.settings import get_settings

LOG_LIMIT = 500


def _show_verification(job: dict[str, Any]) -> None:
    result = job["result"]
    if job["status"] == "failed":
        st.error(f"The last verification could not run ({job_caption(job)}): {job['error']}")
    elif result.get("ok"):
        st.success(
            f"Audit chain verified: {result['checked']} events, head {str(result['head'])[:16]}… ({job_caption(job)})"
        )
    else:
        where = f"row {result['broken_id']}" if result.get("broken_id") is not None else "the end of the chain"
        st.error(f"Audit chain broken at {where}: {result.get('reason')} ({job_caption(job)})")


def _verification(signed: SignedIn) -> None:
    st.subheader("Chain verification")
    anchor = st.text_input("Anchor head hash (optional: a head recorded outside the database)", key="audit_anchor")
    job_panel(
        signed,
        kind=VERIFY_KIND,
        params={"anchor": anchor.strip()} if anchor.strip() else {},
        start_label="Verify the chain now",
        key="audit_verify",
        on_result=_show_verification,
        empty="No verification has run yet: press 'Verify the chain now'; `finmed worker` walks the chain.",
    )


def _log(signed: SignedIn) -> None:
    st.subheader("Audit log")
    cols = st.columns(5)
    actor = cols[0].text_input("Actor", key="audit_actor")
    action = cols[1].text_input("Event (e.g. review.decided, or review. for all review events)", key="audit_action")
    subject = cols[2].text_input("Object (type:id, e.g. review_item:3)", key="audit_subject")
    since = cols[3].date_input("From", value=date.today() - timedelta(days=30), key="audit_since")
    until = cols[4].date_input("To", value=date.today(), key="audit_until")
    subject_type, _, subject_id = subject.strip().partition(":")
    with acting(signed) as (session, user):
        events = read_events(
            session,
            user=user,
            actor=actor.strip() or None,
            action=action.strip() or None,
            subject_type=subject_type or None,
            subject_id=subject_id or None,
            since=datetime.combine(since, time.min, UTC),
            until=datetime.combine(until + timedelta(days=1), time.min, UTC),
            newest_first=True,
            limit=LOG_LIMIT,
        )
        frame = pd.DataFrame(
            [
                {
                    "id": e.id,
                    "time": fmt_time(e.created_at),
                    "actor": e.actor,
                    "event": e.action,
                    "object": f"{e.subject_type}:{e.subject_id}" if e.subject_type else e.subject_id,
                    "details": str(e.payload) if e.payload else "",
                }
                for e in events
            ]
        )
    if frame.empty:
        st.info("No audit events match these filters: widen the dates or clear a filter.")
        return
    st.caption(
        f"{len(frame)} event(s), newest first" + (f" (the newest {LOG_LIMIT})" if len(frame) == LOG_LIMIT else "")
    )
    st.dataframe(frame, hide_index=True, width="stretch")


def _rates(signed: SignedIn) -> None:
    st.subheader("Approval and override rates")
    with acting(signed) as (session, user):
        rows = decision_rates(session, user=user)
    frame = pd.DataFrame(rows)
    if frame.empty or not frame["decided"].any():
        st.info("No decided review items yet: rates appear after the first decisions.")
        if not frame.empty:
            st.dataframe(frame, hide_index=True, width="stretch")
        return
    st.dataframe(frame, hide_index=True, width="stretch")
    chart = frame.dropna(subset=["approval_rate"]).assign(label=lambda f: f["model"] + " / " + f["policy"])
    st.bar_chart(chart.set_index("label")[["approval_rate", "override_rate"]], stack=False)


def _exports(signed: SignedIn) -> None:
    st.subheader("Exports")
    cols = st.columns(3)
    since = cols[0].date_input("Decided since", value=date.today() - timedelta(days=30), key="export_since")
    fmt = cols[1].selectbox("Format", ["csv", "jsonl"], key="export_fmt")
    domain = cols[2].selectbox("Training records of domain", ["finance", "medical"], key="export_domain")
    out_dir = get_settings().data_dir / "exports"
    left, right = st.columns(2)
    if left.button("Export reviewed items", key="export_items"):
        out = out_dir / f"review-{datetime.now(UTC):%Y%m%dT%H%M%S}.{fmt}"
        with acting(signed) as (session, user):
            count = export_items(session, user=user, since=datetime.combine(since, time.min, UTC), fmt=fmt, out=out)
        st.session_state["export_file"] = (str(out), count)
    if right.button("Export training records", key="export_training"):
        out = out_dir / f"training-{domain}-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
        with acting(signed) as (session, user):
            count = to_training(session, user=user, domain=domain, out=out)
        st.session_state["export_file"] = (str(out), count)
    if st.session_state.get("export_file"):
        path, count = st.session_state["export_file"]
        st.success(f"{count} row(s) written to {path}")
        with open(path, "rb") as handle:
            st.download_button("Download the export", handle.read(), file_name=path.rsplit("/", 1)[-1])


@page
def render(signed: SignedIn) -> None:
    """Draw verification, the log, the rates and the exports."""
    st.title("Audit trail")
    _verification(signed)
    _log(signed)
    _rates(signed)
    _exports(signed)
