"""The compliance page through Streamlit's AppTest: queue, claim, decide, audit result, role refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from apps.auth import SESSION_KEY, SignedIn
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import User
from core.review.policies import load_policy
from core.review.queue import record_output, route_output
from core.review.tables import ReviewItem

REPO = Path(__file__).resolve().parents[3]

SCRIPT = "from apps.views import compliance\ncompliance.render()\n"


@pytest.fixture
def seeded() -> dict[str, SignedIn]:
    """The configured (temporary) SQLite database with a compliance user, an analyst and two high-risk items."""
    engine = get_engine()
    upgrade(engine)
    policy = load_policy(REPO / "domains" / "finance" / "review_policy.yaml")
    with session_scope(engine) as session:
        users = {r: User(username=r, role=r, password_hash="-") for r in ("compliance", "analyst", "engineer")}
        session.add_all(users.values())
        session.flush()
        for risk in (4, 5):
            output = record_output(
                session,
                user=users["engineer"],
                domain="finance",
                input_text="card 4111 1111 1111 1111",
                prompt=f"score {risk}",
                raw_output=f"risk_level: {risk}",
                parsed={"risk_level": risk, "numeric_score": 0.9},
                model_name="finance-lora",
                model_version=1,
            )
            route_output(session, user=users["engineer"], output=output, policy=policy)
        return {r: SignedIn(u.id, u.username, u.role) for r, u in users.items()}


def _app(user: SignedIn) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=30)
    at.session_state[SESSION_KEY] = user
    return at.run()


def test_work_an_item_from_the_page(seeded: dict[str, SignedIn]) -> None:
    at = _app(seeded["compliance"])
    assert not at.exception
    assert at.success[0].value.startswith("Audit chain verified")
    assert len(at.dataframe[0].value) == 2
    at.button(key="claim_next").click().run()
    claimed = at.session_state["compliance_claimed_item"]
    assert claimed is not None and at.subheader[1].value.startswith(f"Item {claimed} (finance")
    # Rejecting without a reason is refused with the service's message; nothing changes.
    at.button(key=f"rejected_{claimed}").click().run()
    assert "a reason is required to mark it rejected" in at.error[0].value
    at.text_area(key=f"edit_{claimed}").set_value("risk_level: 1").run()
    at.button(key=f"edited_{claimed}").click().run()
    assert at.success[-1].value == f"Item {claimed}: edited."
    with session_scope(get_engine()) as session:
        item = session.get(ReviewItem, claimed)
        assert item.state == "edited" and item.edited_text == "risk_level: 1" and "+risk_level: 1" in item.diff
    assert len(at.dataframe[0].value) == 1


def test_broken_chain_is_shown(seeded: dict[str, SignedIn]) -> None:
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    at = _app(seeded["compliance"])
    assert at.error[0].value == "Audit chain broken at row 2: content does not match its hash"


def test_analyst_is_refused_by_the_service(seeded: dict[str, SignedIn]) -> None:
    at = _app(seeded["analyst"])
    assert "verify the audit log: role 'analyst' of user 'analyst' is not allowed" in at.error[0].value
