"""Compliance page: work the review queue (approve, reject, edit, escalate) and check the audit chain."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.auth import current_user
from core.audit import verify as audit_verify
from core.db.engine import get_engine, session_scope
from core.db.tables import User
from core.errors import FinmedError
from core.review import queue
from core.review.tables import ModelOutput, ReviewItem

CLAIM_KEY = "compliance_claimed_item"
OPEN_STATES = ("pending", "in_review", "escalated")


def _audit_section(user_id: int) -> None:
    st.subheader("Audit chain")
    with session_scope(get_engine()) as session:
        report = audit_verify.verify(session, user=session.get(User, user_id))
    if report.ok:
        st.success(f"Audit chain verified: {report.checked} events, head {report.head[:16]}…")
    else:
        where = f"row {report.broken_id}" if report.broken_id is not None else "the end of the chain"
        st.error(f"Audit chain broken at {where}: {report.reason}")


def _queue_section(user_id: int) -> None:
    st.subheader("Queue")
    domain = st.selectbox("Domain", ["all", "finance", "medical"], key="compliance_domain")
    with session_scope(get_engine()) as session:
        user = session.get(User, user_id)
        rows = queue.list_items(session, user=user, domain=None if domain == "all" else domain, states=OPEN_STATES)
        frame = pd.DataFrame(
            [
                {
                    "id": item.id,
                    "domain": item.domain,
                    "queue": item.queue,
                    "state": item.state,
                    "priority": item.priority,
                    "reasons": ", ".join(item.reasons),
                    "model": f"{output.model_name}@{output.model_version}",
                    "created": item.created_at,
                }
                for item, output in rows
            ]
        )
    if frame.empty:
        st.info("No open review items.")
    else:
        st.dataframe(frame, hide_index=True, width="stretch")
    if st.button("Claim next item", key="claim_next"):
        with session_scope(get_engine()) as session:
            item = queue.claim_next(
                session, user=session.get(User, user_id), domain=None if domain == "all" else domain
            )
            st.session_state[CLAIM_KEY] = item.id if item else None
        if st.session_state[CLAIM_KEY] is None:
            st.info("Nothing to claim.")
        else:
            st.rerun()


def _decision_section(user_id: int) -> None:
    item_id = st.session_state.get(CLAIM_KEY)
    if item_id is None:
        return
    with session_scope(get_engine()) as session:
        item = session.get(ReviewItem, item_id)
        output = session.get(ModelOutput, item.output_id) if item else None
        if item is None or output is None or item.state != "in_review" or item.claimed_by != user_id:
            st.session_state[CLAIM_KEY] = None
            return
        st.subheader(f"Item {item.id} ({item.domain}, {', '.join(item.reasons)})")
        st.caption(
            f"model {output.model_name}@{output.model_version} ({output.precision}), {output.latency_ms:.0f} ms; "
            f"policy {item.policy_name}@{item.policy_version}; claim until {item.lease_expires_at:%H:%M} UTC"
        )
        st.text_area("Input (PII masked)", output.input_text, disabled=True, key=f"input_{item.id}")
        st.text_area("Prompt", output.prompt, disabled=True, key=f"prompt_{item.id}")
        st.json(output.parsed if output.parsed is not None else {"unparseable": output.parse_error})
        raw = output.raw_output
    edited = st.text_area("Model output (edit to correct it)", raw, key=f"edit_{item_id}")
    reason = st.text_input("Reason (required to reject or escalate)", key=f"reason_{item_id}")
    cols = st.columns(4)
    choice = None
    for col, decision, label in zip(
        cols,
        ("approved", "rejected", "edited", "escalated"),
        ("Approve", "Reject", "Save edit", "Escalate"),
        strict=True,
    ):
        if col.button(label, key=f"{decision}_{item_id}"):
            choice = decision
    if choice is None:
        return
    try:
        with session_scope(get_engine()) as session:
            queue.decide(
                session,
                user=session.get(User, user_id),
                item_id=item_id,
                decision=choice,
                reason=reason,
                edited_text=edited if choice == "edited" else None,
            )
    except FinmedError as exc:
        st.error(str(exc))
        return
    st.session_state[CLAIM_KEY] = None
    st.success(f"Item {item_id}: {choice}.")


def render() -> None:
    """Draw the audit result, the open queue, and the claimed item with its decision buttons."""
    st.title("Review queue and audit trail")
    signed = current_user()
    if signed is None:
        st.error("Sign in first.")
        return
    try:
        _audit_section(signed.id)
        _decision_section(signed.id)
        _queue_section(signed.id)
    except FinmedError as exc:
        st.error(str(exc))
