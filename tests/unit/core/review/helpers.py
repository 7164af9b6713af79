"""Shared builders for the review tests: users of every role and routed items in a given domain."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from core.db.tables import ROLES, User
from core.review.policies import Policy, load_policy
from core.review.queue import record_output, route_output
from core.review.tables import ReviewItem

REPO = Path(__file__).resolve().parents[4]


def finance_policy(**overrides: object) -> Policy:
    return load_policy(REPO / "domains" / "finance" / "review_policy.yaml", overrides=overrides or None)


def medical_policy(**overrides: object) -> Policy:
    return load_policy(REPO / "domains" / "medical" / "review_policy.yaml", overrides=overrides or None)


def make_users(session: Session, prefix: str = "") -> dict[str, User]:
    """One user per role, plus a second analyst and radiologist, keyed by role (`analyst2`, `radiologist2`)."""
    users = {}
    for role in (*ROLES, "analyst2", "radiologist2"):
        base = role.rstrip("2")
        # Built directly (no argon2 hashing, no audit event): these tests never sign in, and hashing is slow.
        users[role] = User(username=f"{prefix}{role}", role=base, password_hash="-")
        session.add(users[role])
    session.flush()
    return users


def finance_item(session: Session, producer: User, *, risk: int = 4, score: float = 0.8) -> ReviewItem:
    """A routed finance assessment (high risk by default, so it lands in the analyst queue)."""
    output = record_output(
        session,
        user=producer,
        domain="finance",
        input_text="Customer: Jane Doe card 4111 1111 1111 1111 paid 950.00 EUR at 03:12",
        system_prompt="You score transactions for fraud risk.",
        prompt="Transaction of 950.00 EUR at 03:12 from a new location. Give risk level 0-5 and reasons.",
        raw_output=f"risk_level: {risk}\nreasons: night-time; new location",
        parsed={"risk_level": risk, "numeric_score": score, "reasons": ["night-time", "new location"]},
        model_name="finance-lora",
        model_version=3,
        precision="int4",
        latency_ms=41.5,
        context_ids=["case-17", "case-99"],
    )
    item = route_output(session, user=producer, output=output, policy=finance_policy())
    assert item is not None
    return item


def medical_item(session: Session, producer: User) -> ReviewItem:
    """A routed medical draft (every draft goes to the radiologist queue)."""
    output = record_output(
        session,
        user=producer,
        domain="medical",
        input_text="Patient: John Smith, MRN: 00123456. CT chest: 4 mm nodule right upper lobe.",
        prompt="Findings: 4 mm nodule right upper lobe. Write the impression.",
        raw_output="Impression: 4 mm pulmonary nodule.\nNo follow-up needed.",
        parsed={"kind": "draft", "impression": "4 mm pulmonary nodule."},
        model_name="radiology-lora",
        model_version=1,
        precision="fp16",
        latency_ms=120.0,
    )
    item = route_output(session, user=producer, output=output, policy=medical_policy())
    assert item is not None
    return item
