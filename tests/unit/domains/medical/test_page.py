"""The radiologist page through Streamlit's AppTest: worklist oldest first, study with highlights, sign, addendum."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from apps.auth import SESSION_KEY, SignedIn
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import User
from domains.medical.drafting import InProcessEngine, draft_reports
from domains.medical.ingest import report_from_text
from domains.medical.page import highlight
from domains.medical.store import store_drafts
from domains.medical.synthetic import generate
from domains.medical.tables import MedicalAddendum, MedicalSignedReport

SCRIPT = "from apps.auth import current_user\nfrom domains.medical.page import render\nrender(current_user())\n"


def test_highlight_marks_each_mention() -> None:
    out = highlight("No effusion. Cardiomegaly <b>.")
    assert 'title="pleural_effusion: absent"' in out and 'title="cardiomegaly: present"' in out
    assert "&lt;b&gt;" in out  # report text is escaped


def test_worklist_sign_and_addendum(tiny_genai_dir: Path) -> None:
    engine = get_engine()
    upgrade(engine)
    reports = [report_from_text(r.text, report_id=r.report_id) for r in generate(2, hospital="northgate", seed=4)]
    model = InProcessEngine(tiny_genai_dir, name="medical-northgate")
    try:
        drafts = draft_reports(model, reports, max_tokens=8)
    finally:
        model.close()
    with session_scope(engine) as session:
        rad = User(username="rad", role="radiologist", password_hash="-")
        ana = User(username="ana", role="analyst", password_hash="-")
        session.add_all([rad, ana])
        session.flush()
        store_drafts(session, user=rad, drafts=drafts, hospital="northgate", model_name="medical-northgate")
        signed_in, analyst = SignedIn(rad.id, rad.username, rad.role), SignedIn(ana.id, ana.username, ana.role)
    at = AppTest.from_string(SCRIPT, default_timeout=60)
    at.session_state[SESSION_KEY] = analyst
    at.run()
    assert at.error and "radiologists" in at.error[0].value
    at = AppTest.from_string(SCRIPT, default_timeout=60)
    at.session_state[SESSION_KEY] = signed_in
    at.run()
    assert not at.exception, at.exception
    assert at.caption[0].value == "2 open draft(s), oldest first"
    assert at.selectbox(key="medical_draft").value == 1  # the oldest first
    at.text_area(key="medical_edit_1").input("Small left pleural effusion.").run()
    at.button(key="medical_sign").click().run()
    assert not at.exception, at.exception
    with session_scope(engine) as session:
        signed = session.scalar(select(MedicalSignedReport))
        assert signed is not None and signed.signed_text == "Small left pleural effusion." and signed.edited
    at.run()
    assert at.caption[0].value == "1 open draft(s), oldest first"
    # The study view offers the hospital's similar signed priors (none indexed here), and after signing the
    # radiologist sees their own agreement with the drafts for today.
    assert [e.label for e in at.expander] == ["Similar prior reports (0)"]
    assert "My agreement with the drafts" in [h.value for h in at.subheader]
    assert any(c.value.startswith("1 signed; ROUGE-L") for c in at.caption), [c.value for c in at.caption]
    at.text_area[-1].input("Also note a rib fracture.")
    at.button[-1].click().run()  # the addendum form's submit
    assert not at.exception, at.exception
    with session_scope(engine) as session:
        assert [a.text for a in session.scalars(select(MedicalAddendum))] == ["Also note a rib fracture."]
