"""Review queue services on SQLite and PostgreSQL: transitions, roles per call, leases, masking, audit events."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.audit.verify import verify_chain
from core.db.base import utcnow
from core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from core.review.queue import claim_item, claim_next, decide, list_items, move, record_output
from core.review.states import TRANSITIONS
from core.review.tables import REVIEW_STATES, ModelOutput, ReviewDecision, ReviewItem

from .helpers import finance_item, make_users, medical_item

ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
REFUSED = [(a, b) for a, b in itertools.product(REVIEW_STATES, REVIEW_STATES) if (a, b) not in ALLOWED]


def _bring_to(session: Session, users: dict, state: str):  # type: ignore[no-untyped-def]
    """A fresh finance item moved to `state` through the allowed transitions only."""
    item = finance_item(session, users["engineer"])
    analyst, senior = users["analyst"], users["compliance"]
    path = {
        "pending": [],
        "in_review": [(analyst, "in_review")],
        "approved": [(analyst, "in_review"), (analyst, "approved")],
        "rejected": [(analyst, "in_review"), (analyst, "rejected")],
        "edited": [(analyst, "in_review"), (analyst, "edited")],
        "escalated": [(analyst, "in_review"), (analyst, "escalated")],
    }[state]
    for who, to in path:
        move(
            session, user=who, item_id=item.id, to=to, reason="because", edited_text="fixed" if to == "edited" else None
        )
    assert item.state == state
    return item, (senior if state == "escalated" else analyst)


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_every_allowed_transition_works(db_session: Session, source: str, target: str) -> None:
    users = make_users(db_session)
    item, actor = _bring_to(db_session, users, source)
    edited = "risk_level: 2\nreasons: known merchant" if target == "edited" else None
    move(db_session, user=actor, item_id=item.id, to=target, reason="checked", edited_text=edited)
    assert item.state == target
    last = db_session.scalars(select(ReviewDecision).order_by(ReviewDecision.id.desc())).first()
    assert (last.from_state, last.to_state, last.actor_id) == (source, target, actor.id)
    if target in ("approved", "rejected", "edited", "escalated"):
        assert item.decided_by == actor.id and item.decided_at is not None and item.decision_reason == "checked"
    if target == "edited":
        assert item.edited_text == edited and last.edited_text == edited
        assert "-risk_level: 4" in item.diff and "+risk_level: 2" in item.diff and item.diff.startswith("---")


@pytest.mark.parametrize(("source", "target"), REFUSED)
def test_every_other_transition_is_refused(db_session: Session, source: str, target: str) -> None:
    users = make_users(db_session)
    item, actor = _bring_to(db_session, users, source)
    if source == "in_review" and target == "in_review":
        # Claiming an item someone holds is refused too (the claim is live).
        with pytest.raises(ConflictError, match=f"review item {item.id} is claimed"):
            move(db_session, user=users["analyst2"], item_id=item.id, to=target)
        return
    with pytest.raises(ConflictError, match=f"review item {item.id}: cannot go from '{source}' to '{target}'"):
        move(
            db_session,
            user=actor,
            item_id=item.id,
            to=target,
            reason="r",
            edited_text="x" if target == "edited" else None,
        )
    assert db_session.get(ReviewItem, item.id).state == source


def test_roles_per_service_call(db_session: Session) -> None:
    users = make_users(db_session)
    med = medical_item(db_session, users["engineer"])
    fin = finance_item(db_session, users["engineer"])
    # Only producers record outputs; compliance does not.
    with pytest.raises(PermissionDenied, match="record a model output: role 'compliance'"):
        record_output(
            db_session,
            user=users["compliance"],
            domain="finance",
            input_text="",
            prompt="",
            raw_output="",
            parsed=None,
            model_name="m",
        )
    # An analyst cannot claim or sign a medical report; the engineer cannot review at all.
    with pytest.raises(PermissionDenied, match=f"claim review item {med.id}: role 'analyst'"):
        claim_item(db_session, user=users["analyst"], item_id=med.id)
    assert claim_next(db_session, user=users["analyst"], domain="medical") is None
    with pytest.raises(PermissionDenied, match="claim a review item: role 'engineer'"):
        claim_next(db_session, user=users["engineer"])
    claimed = claim_next(db_session, user=users["radiologist"], domain="medical")
    assert claimed is not None and claimed.id == med.id
    with pytest.raises(PermissionDenied, match=f"decide review item {med.id}: role 'analyst'"):
        decide(db_session, user=users["analyst"], item_id=med.id, decision="approved")
    decide(db_session, user=users["radiologist"], item_id=med.id, decision="edited", edited_text="Impression: benign.")
    # A radiologist cannot work finance items; an escalated item needs a senior role.
    with pytest.raises(PermissionDenied, match="role 'radiologist'"):
        claim_item(db_session, user=users["radiologist"], item_id=fin.id)
    claim_item(db_session, user=users["analyst"], item_id=fin.id)
    decide(db_session, user=users["analyst"], item_id=fin.id, decision="escalated", reason="unsure")
    with pytest.raises(PermissionDenied, match="role 'analyst'"):
        claim_item(db_session, user=users["analyst2"], item_id=fin.id)
    assert claim_next(db_session, user=users["analyst2"]) is None
    assert claim_next(db_session, user=users["compliance"]).id == fin.id
    # Another reviewer cannot decide an item someone else holds.
    with pytest.raises(ConflictError, match="claimed by another reviewer"):
        decide(db_session, user=users["admin"], item_id=fin.id, decision="approved")
    # Listing: the radiologist sees only radiologist items; compliance sees all.
    assert {i.domain for i, _ in list_items(db_session, user=users["radiologist"])} == {"medical"}
    assert {i.domain for i, _ in list_items(db_session, user=users["compliance"])} == {"medical", "finance"}
    with pytest.raises(PermissionDenied, match="list the review queue: role 'engineer'"):
        list_items(db_session, user=users["engineer"])


def test_decision_input_is_checked(db_session: Session) -> None:
    users = make_users(db_session)
    item = finance_item(db_session, users["engineer"])
    claim_item(db_session, user=users["analyst"], item_id=item.id)
    with pytest.raises(ValidationError, match="unknown decision 'maybe'"):
        decide(db_session, user=users["analyst"], item_id=item.id, decision="maybe")
    with pytest.raises(ValidationError, match="a reason is required to mark it rejected"):
        decide(db_session, user=users["analyst"], item_id=item.id, decision="rejected")
    with pytest.raises(ValidationError, match="an edit needs the edited text"):
        decide(db_session, user=users["analyst"], item_id=item.id, decision="edited", edited_text="  ")
    with pytest.raises(ValidationError, match="only accepted with the decision 'edited'"):
        decide(db_session, user=users["analyst"], item_id=item.id, decision="approved", edited_text="x")
    with pytest.raises(NotFoundError, match="no review item 999999"):
        decide(db_session, user=users["analyst"], item_id=999999, decision="approved")
    assert item.state == "in_review"


def test_expired_lease_returns_the_item(db_session: Session) -> None:
    users = make_users(db_session)
    item = finance_item(db_session, users["engineer"])
    t0 = utcnow()
    assert claim_next(db_session, user=users["analyst"], now=t0).id == item.id
    # While the lease runs nobody else gets it; after it lapses the next reviewer does.
    assert claim_next(db_session, user=users["analyst2"], now=t0 + timedelta(minutes=14)) is None
    again = claim_next(db_session, user=users["analyst2"], now=t0 + timedelta(minutes=16))
    assert again is not None and again.id == item.id and again.claimed_by == users["analyst2"].id
    # The first reviewer's late decision is refused; the new holder's counts.
    with pytest.raises(ConflictError, match="claimed by another reviewer"):
        decide(db_session, user=users["analyst"], item_id=item.id, decision="approved", now=t0 + timedelta(minutes=17))
    with pytest.raises(ConflictError, match="expired"):
        decide(db_session, user=users["analyst2"], item_id=item.id, decision="approved", now=t0 + timedelta(minutes=40))
    decide(db_session, user=users["analyst2"], item_id=item.id, decision="approved", now=t0 + timedelta(minutes=20))
    assert item.state == "approved"
    claims = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "review.claimed")).all()
    assert [c.payload["lapsed_claim_of"] for c in claims] == [None, users["analyst"].id]


def test_outputs_are_masked_and_everything_is_audited(db_session: Session) -> None:
    users = make_users(db_session)
    item = medical_item(db_session, users["engineer"])
    output = db_session.get(ModelOutput, item.output_id)
    assert "John Smith" not in output.input_text and "00123456" not in output.input_text
    assert output.input_text.startswith("Patient: [NAME], MRN: [NATIONAL_ID].")
    assert item.policy_name == "medical-default" and item.policy_version == 1 and len(item.policy_hash) == 64
    claim_next(db_session, user=users["radiologist"])
    decide(db_session, user=users["radiologist"], item_id=item.id, decision="approved")
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-5:] == ["output.created", "policy.changed", "review.routed", "review.claimed", "review.decided"]
    assert verify_chain(db_session).ok
