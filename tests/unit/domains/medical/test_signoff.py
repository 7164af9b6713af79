"""Drafts stored and routed, sign-off services (roles in the service, immutability, audited addenda), no PHI in
the vector store, the stored prompt or a training record. Drafts come from the tiny model through ServingState."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.db.append_only import AppendOnlyViolation
from core.db.tables import User
from core.errors import ConflictError, PermissionDenied
from core.review.exports import to_training
from core.review.tables import ModelOutput
from domains.medical.drafting import InProcessEngine, draft_reports
from domains.medical.ingest import read_reports
from domains.medical.phi import phi_found
from domains.medical.signoff import (
    add_addendum,
    claim_draft,
    get_draft,
    my_agreement_by_day,
    reject_draft,
    sign_report,
    signed_reports,
    worklist,
)
from domains.medical.store import store_drafts
from domains.medical.synthetic import generate, write_folder
from domains.medical.tables import MedicalAddendum, MedicalDraft
from domains.medical.training import stage2_records

PHI_WORDS = ("Mary Jones", "John Smith", "Ana Lopez", "Alan Reed", "(555)")


@pytest.fixture(scope="module")
def phi_reports(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = write_folder(generate(4, hospital="st_marys", seed=3, phi=True), tmp_path_factory.mktemp("r") / "rep")
    reports = read_reports(folder, hospital="st_marys").reports
    assert all(phi_found(r.raw) for r in reports)  # the banner really carries PHI
    return reports


@pytest.fixture(scope="module")
def drafts(phi_reports, tiny_genai_dir: Path):  # noqa: ANN001, ANN201
    engine = InProcessEngine(tiny_genai_dir, name="medical-st-marys")
    try:
        return draft_reports(engine, phi_reports, concurrency=2, max_tokens=12)
    finally:
        engine.close()


def _users(session: Session) -> dict[str, User]:
    users = {role: User(username=f"u-{role}", role=role, password_hash="-") for role in
             ("radiologist", "analyst", "admin", "engineer", "compliance")}  # fmt: skip
    session.add_all(users.values())
    session.flush()
    return users


def _no_phi(text: str) -> None:
    assert not any(w in text for w in PHI_WORDS), text
    assert not phi_found(text), (phi_found(text), text)


def test_drafts_are_stored_routed_and_phi_free(db_session: Session, drafts) -> None:  # noqa: ANN001
    users = _users(db_session)
    rows = store_drafts(db_session, user=users["engineer"], drafts=drafts, hospital="st_marys",
                        model_name="medical-st-marys", model_version=1, precision="int4")  # fmt: skip
    assert len(rows) == 4 and all(r.review_item_id is not None for r in rows)
    for row in rows:
        _no_phi(row.prompt)
        _no_phi(json.dumps(row.study))
        assert row.latency_ms > 0 and "FINDINGS:" in row.prompt
    for output in db_session.scalars(select(ModelOutput)):
        _no_phi(output.prompt + output.input_text)
    listed = worklist(db_session, user=users["radiologist"], hospital="st_marys")
    assert [e.draft.id for e in listed] == sorted(r.id for r in rows)  # oldest first
    assert worklist(db_session, user=users["radiologist"], hospital="elsewhere") == []


def test_signing_roles_immutability_and_addenda(db_session: Session, drafts) -> None:  # noqa: ANN001
    users = _users(db_session)
    rows = store_drafts(db_session, user=users["engineer"], drafts=drafts, hospital="st_marys",
                        model_name="medical-st-marys")  # fmt: skip
    first = rows[0]
    for role in ("analyst", "admin", "engineer", "compliance"):
        with pytest.raises(PermissionDenied):
            sign_report(db_session, user=users[role], draft_id=first.id, text="No acute process.")
    claim_draft(db_session, user=users["radiologist"], draft_id=first.id)
    signed = sign_report(db_session, user=users["radiologist"], draft_id=first.id, text="Small left effusion.")
    assert signed.edited and signed.signed_labels == {"pleural_effusion": "present"}
    assert first.state == "signed" and signed.signed_text == "Small left effusion."
    with pytest.raises(ConflictError, match="already signed"):
        sign_report(db_session, user=users["radiologist"], draft_id=first.id, text="again")
    with pytest.raises(AppendOnlyViolation), db_session.begin_nested():
        signed.signed_text = "changed"
        db_session.flush()
    assert signed.signed_text == "Small left effusion."
    with pytest.raises(PermissionDenied):
        add_addendum(db_session, user=users["analyst"], signed_report_id=signed.id, text="x")
    note = add_addendum(db_session, user=users["radiologist"], signed_report_id=signed.id, text="Also a rib fracture.")
    assert db_session.scalar(select(MedicalAddendum).where(MedicalAddendum.id == note.id)).text.startswith("Also")
    events = [e.action for e in db_session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "medical.report_signed" in events and events[-1] == "medical.addendum_added"
    with pytest.raises(AppendOnlyViolation), db_session.begin_nested():
        db_session.delete(note)
        db_session.flush()
    # The reads the page makes: signed reports with their addenda counted, the signer's own agreement per day.
    assert signed_reports(db_session, user=users["compliance"]) == [(signed, 1)]
    assert signed_reports(db_session, user=users["radiologist"], hospital="elsewhere") == []
    (day,) = my_agreement_by_day(db_session, user=users["radiologist"])
    assert day["day"] == signed.signed_at.strftime("%Y-%m-%d") and day["signed"] == 1 and day["edited_share"] == 1.0
    assert day["rouge_l"] == pytest.approx(signed.rouge_l)
    for role, read in (("analyst", signed_reports), ("compliance", my_agreement_by_day)):
        with pytest.raises(PermissionDenied):
            read(db_session, user=users[role])
    assert get_draft(db_session, user=users["compliance"], draft_id=first.id) is first
    with pytest.raises(PermissionDenied):
        get_draft(db_session, user=users["analyst"], draft_id=first.id)


def test_reject_and_feedback_records_are_phi_free(db_session: Session, drafts, tmp_path: Path, phi_reports) -> None:  # noqa: ANN001
    users = _users(db_session)
    rows = store_drafts(db_session, user=users["engineer"], drafts=drafts, hospital="st_marys",
                        model_name="medical-st-marys")  # fmt: skip
    with pytest.raises(PermissionDenied):
        reject_draft(db_session, user=users["admin"], draft_id=rows[2].id, reason="wrong side")
    reject_draft(db_session, user=users["radiologist"], draft_id=rows[2].id, reason="wrong side")
    assert db_session.get(MedicalDraft, rows[2].id).state == "rejected"
    sign_report(db_session, user=users["radiologist"], draft_id=rows[3].id, text="Normal chest radiograph.")
    out = tmp_path / "feedback.jsonl"
    assert to_training(db_session, user=users["engineer"], domain="medical", out=out) == 1
    record = json.loads(out.read_text())
    assert record["messages"][-1]["content"] == "Normal chest radiograph."
    _no_phi(json.dumps(record["messages"]))  # (meta holds the decision time, not PHI)
    for rec in stage2_records([r for r in phi_reports if r.trainable], hospital="st_marys"):
        _no_phi(json.dumps(rec["messages"]))


def test_prior_reports_index_is_phi_free(tmp_path: Path, phi_reports, minilm_embedder) -> None:  # noqa: ANN001
    from core.retrieval.lance_store import LanceStore
    from domains.medical.prompts import build_messages
    from domains.medical.similar import COLLECTION, PriorReports, index_reports

    store = LanceStore(tmp_path / "lance")
    assert index_reports(store, minilm_embedder, phi_reports, hospital="st_marys") == len(phi_reports)
    hits = store.vector_search(COLLECTION, minilm_embedder.encode(["effusion"])[0], tenant="st_marys", limit=50)
    assert len(hits) == len(phi_reports)
    for hit in hits:
        _no_phi(hit.text + json.dumps(hit.metadata))
    priors = PriorReports(store, minilm_embedder, hospital="st_marys").similar(phi_reports[0], 2)
    assert len(priors) == 2 and phi_reports[0].report_id not in [p.report_id for p in priors]
    _no_phi(json.dumps(build_messages(phi_reports[0], priors)))
    assert not PriorReports.available(store, "other_hospital")
