"""Radiologist page: the worklist (oldest first, per hospital), claim a study, read it with the labeler's
highlights and the hospital's most similar signed prior reports, edit the draft impression, then sign, reject, or
add an addendum to a signed report; the radiologist's own agreement with the drafts per day.

Every read and action calls domains.medical.signoff or .pipeline (the role checks and audit events are there, not
here); the page holds no query of its own.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import streamlit as st

from core.auth.users import get_user
from core.db.engine import get_engine, session_scope
from core.errors import FinmedError
from domains.medical.labeler import mentions

ROLES = ("radiologist", "compliance")
COLOURS = {"present": "#f8d7da", "uncertain": "#fff3cd", "absent": "#d1e7dd"}
SELECTED = "medical_draft"


def highlight(text: str) -> str:
    """HTML of `text` with each finding mention marked in its status colour (present, uncertain, absent)."""
    out, at = [], 0
    for m in mentions(text):
        out.append(html.escape(text[at : m.start]))
        out.append(f'<mark style="background:{COLOURS[m.status]}" title="{m.finding}: {m.status}">'
                   f"{html.escape(text[m.start : m.end])}</mark>")  # fmt: skip
        at = m.end
    out.append(html.escape(text[at:]))
    return "".join(out).replace("\n", "<br>")


def _worklist(username: str, hospital: str | None) -> list[dict[str, Any]]:
    from domains.medical.signoff import worklist

    with session_scope(get_engine()) as session:
        user = get_user(session, username)
        return [
            {"draft": e.draft.id, "hospital": e.draft.hospital, "study": e.draft.study_id, "state": e.item.state,
             "created": e.draft.created_at.strftime("%Y-%m-%d %H:%M"), "draft text": e.draft.draft_text[:80]}
            for e in worklist(session, user=user, hospital=hospital)
        ]  # fmt: skip


def _similar(draft: Any) -> list[Any]:
    """Priors of one draft, computed once per browser session: every click reruns the page, and retrieval opens
    the store and loads the embedder. (Kept in session_state, not st.cache_data: a module-level cache decorator
    warns on every CLI import of the plugin.)"""
    from core.settings import get_settings
    from domains.medical.pipeline import similar_priors

    cache = st.session_state.setdefault("medical_priors", {})
    if draft.id not in cache:
        cache[draft.id] = similar_priors(draft, get_settings(), k=3)
    return cache[draft.id]


def _priors(draft: Any) -> None:
    """The hospital's signed prior reports most similar to this study (from retrieval), read-only."""
    try:
        priors = _similar(draft)
    except FinmedError as exc:  # retrieval is an aid: the study view stays usable without it
        st.caption(f"Similar prior reports unavailable: {exc}")
        return
    with st.expander(f"Similar prior reports ({len(priors)})", expanded=False):
        if not priors:
            st.caption("No prior reports of this hospital are indexed.")
        for prior in priors:
            st.markdown(f"**{html.escape(prior.report_id)}** — findings: {highlight(prior.findings)}<br>"
                        f"signed impression: {highlight(prior.impression)}", unsafe_allow_html=True)  # fmt: skip


def _study(draft_id: int) -> None:
    from domains.medical.signoff import claim_draft, get_draft, reject_draft, sign_report

    username = st.session_state["medical_username"]
    with session_scope(get_engine()) as session:
        draft = get_draft(session, user=get_user(session, username), draft_id=draft_id)
        study, text, state = dict(draft.study), draft.draft_text, draft.state
        model = f"{draft.model_name} v{draft.model_version}" if draft.model_version else draft.model_name
        session.expunge(draft)
    st.subheader(f"Draft {draft_id}: {draft.study_id} ({draft.hospital})")
    st.caption(f"model {model}, {draft.latency_ms:.0f} ms; highlights: red present, yellow uncertain, green absent")
    for name in ("examination", "indication", "comparison", "findings"):
        if study.get(name):
            st.markdown(f"**{name.upper()}**<br>{highlight(study[name])}", unsafe_allow_html=True)
    st.markdown(f"**DRAFT IMPRESSION**<br>{highlight(text)}", unsafe_allow_html=True)
    _priors(draft)
    if state != "drafted":
        st.info(f"This draft is {state}.")
        return
    edited = st.text_area("Impression (edit before signing)", value=text, height=160, key=f"medical_edit_{draft_id}")
    reason = st.text_input("Reason (to reject)", key=f"medical_reason_{draft_id}")
    claim, sign, reject = st.columns(3)
    with session_scope(get_engine()) as session:
        user = get_user(session, username)
        if claim.button("Claim", key="medical_claim"):
            claim_draft(session, user=user, draft_id=draft_id)
            st.success("Claimed: the draft is yours for the lease.")
        if sign.button("Sign", type="primary", key="medical_sign"):
            signed = sign_report(session, user=user, draft_id=draft_id, text=edited)
            st.success(f"Signed report {signed.id} (ROUGE-L vs draft {signed.rouge_l:.2f}).")
        if reject.button("Reject", key="medical_reject"):
            reject_draft(session, user=user, draft_id=draft_id, reason=reason)
            st.success("Draft rejected.")


def _signed(username: str) -> None:
    from domains.medical.signoff import add_addendum, signed_reports

    with session_scope(get_engine()) as session:
        table = [{"signed": r.id, "study": r.study_id, "hospital": r.hospital, "impression": r.signed_text[:80],
                  "edited": r.edited, "addenda": n}
                 for r, n in signed_reports(session, user=get_user(session, username))]  # fmt: skip
    st.subheader("Signed reports")
    if not table:
        st.caption("None signed yet.")
        return
    st.dataframe(table, hide_index=True)
    with st.form("medical_addendum"):
        target = st.selectbox("Signed report", [r["signed"] for r in table])
        text = st.text_area("Addendum (the signed report itself never changes)")
        if st.form_submit_button("Add addendum"):
            with session_scope(get_engine()) as session:
                add_addendum(session, user=get_user(session, username), signed_report_id=int(target), text=text)
            st.success(f"Addendum added to signed report {target}.")


def _my_agreement(username: str) -> None:
    """The signed-in radiologist's own agreement with the drafts, per day of signing."""
    from domains.medical.signoff import my_agreement_by_day

    with session_scope(get_engine()) as session:
        days = my_agreement_by_day(session, user=get_user(session, username))
    st.subheader("My agreement with the drafts")
    if not days:
        st.caption("Sign a report to see how closely the drafts matched what you signed.")
        return
    frame = pd.DataFrame(days).set_index("day")
    st.caption(f"{int(frame['signed'].sum())} signed; ROUGE-L and finding agreement of draft vs signed, per day")
    st.line_chart(frame[["rouge_l", "finding_agreement", "edited_share"]])
    st.dataframe(frame)


def render(user: Any) -> None:
    """Draw the page for the signed-in `user` (id, username, role); the app shows it to ROLES only."""
    st.title("Radiology worklist")
    if user is None or user.role not in (*ROLES, "admin"):
        st.error("The worklist is for radiologists.")
        return
    st.session_state["medical_username"] = user.username
    try:
        hospital = st.text_input("Hospital (empty: all)", key="medical_hospital").strip() or None
        rows = _worklist(user.username, hospital)
        st.caption(f"{len(rows)} open draft(s), oldest first")
        if rows:
            st.dataframe(rows, hide_index=True)
            chosen = st.selectbox("Open study", [r["draft"] for r in rows], key=SELECTED)
            if chosen is not None:
                _study(int(chosen))
        _signed(user.username)
        if user.role == "radiologist":
            _my_agreement(user.username)
    except FinmedError as exc:
        st.error(str(exc))
