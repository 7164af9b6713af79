"""Review queue page (compliance, admin): the open queue, claim the next item, see what the model saw and said,
decide it (approve, reject, edit, escalate) with a reason. Every call goes through core.review services."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.auth import SignedIn
from apps.common import acting, page
from core.errors import FinmedError
from core.review import queue
from core.review.read import claimed_item

CLAIM_KEY = "compliance_claimed_item"
OPEN_STATES = ("pending", "in_review", "escalated")
DECISIONS = (("approved", "Approve"), ("rejected", "Reject"), ("edited", "Save edit"), ("escalated", "Escalate"))


def _model(name: str, version: int | None) -> str:
    return f"{name}@{version}" if version is not None else name


def _domain_filter() -> str | None:
    domain = st.selectbox("Domain", ["all", "finance", "medical"], key="compliance_domain")
    return None if domain == "all" else domain


def _queue_section(signed: SignedIn, domain: str | None) -> None:
    st.subheader("Queue")
    with acting(signed) as (session, user):
        rows = queue.list_items(session, user=user, domain=domain, states=OPEN_STATES)
        frame = pd.DataFrame(
            [
                {
                    "id": item.id,
                    "domain": item.domain,
                    "queue": item.queue,
                    "state": item.state,
                    "priority": item.priority,
                    "reasons": ", ".join(map(str, item.reasons)),
                    "model": _model(output.model_name, output.model_version),
                    "policy": f"{item.policy_name}@{item.policy_version}",
                    "created": item.created_at,
                }
                for item, output in rows
            ]
        )
    if frame.empty:
        st.info("No open review items. Items arrive when analysts or radiologists send outputs to review.")
    else:
        st.dataframe(frame, hide_index=True, width="stretch")
    if st.session_state.get(CLAIM_KEY) is None and st.button("Claim next item", key="claim_next", type="primary"):
        with acting(signed) as (session, user):
            item = queue.claim_next(session, user=user, domain=domain)
            st.session_state[CLAIM_KEY] = item.id if item else None
        if st.session_state[CLAIM_KEY] is None:
            st.info("Nothing to claim: the queue is empty or every item is claimed by someone else.")
        else:
            st.rerun()


def _decision_section(signed: SignedIn) -> None:
    item_id = st.session_state.get(CLAIM_KEY)
    if item_id is None:
        return
    with acting(signed) as (session, user):
        found = claimed_item(session, user=user, item_id=item_id)
        if found is None:
            st.session_state[CLAIM_KEY] = None
            st.warning(f"Your claim on item {item_id} ended (decided or lapsed): claim the next item.")
            return
        item, output = found
        st.subheader(f"Item {item.id} ({item.domain}, {', '.join(map(str, item.reasons))})")
        st.caption(
            f"model {_model(output.model_name, output.model_version)} ({output.precision or 'n/a'}), "
            f"{output.latency_ms:.0f} ms; policy {item.policy_name}@{item.policy_version}; "
            f"claimed until {item.lease_expires_at:%H:%M} UTC"
        )
        left, right = st.columns(2)
        left.text_area("Input (PII masked)", output.input_text, disabled=True, key=f"input_{item.id}", height=150)
        right.text_area(
            "Prompt as sent",
            output.prompt or "(no prompt: this output came from the numeric model alone, without the LLM)",
            disabled=True,
            key=f"prompt_{item.id}",
            height=150,
        )
        st.markdown("**Parsed result**")
        st.json(output.parsed if output.parsed is not None else {"unparseable": output.parse_error})
        raw = output.raw_output
    edited = st.text_area("Model output (edit it to correct it, then Save edit)", raw, key=f"edit_{item_id}")
    reason = st.text_input("Reason (required to reject or escalate)", key=f"reason_{item_id}")
    choice = None
    for col, (decision, label) in zip(st.columns(len(DECISIONS)), DECISIONS, strict=True):
        if col.button(label, key=f"{decision}_{item_id}"):
            choice = decision
    if choice is None:
        return
    try:
        with acting(signed) as (session, user):
            queue.decide(
                session,
                user=user,
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


@page
def render(signed: SignedIn) -> None:
    """Draw the claimed item with its decision buttons, then the open queue."""
    st.title("Review queue")
    domain = _domain_filter()
    _decision_section(signed)
    _queue_section(signed, domain)
