"""Compliance pages through AppTest: the review queue (empty state, claim, refused decision, edit) and the audit
trail (verification as a job run by the worker, the log filters, decision rates, exports)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from apps.auth import SignedIn
from core.db.engine import get_engine, session_scope
from core.db.tables import User
from core.jobs.worker import Worker
from core.review.policies import load_policy
from core.review.queue import record_output, route_output

from .conftest import open_app

REPO = Path(__file__).resolve().parents[3]


def _seed_items(people: dict[str, SignedIn]) -> None:
    policy = load_policy(REPO / "domains" / "finance" / "review_policy.yaml")
    with session_scope(get_engine()) as session:
        engineer = session.get(User, people["engineer"].id)
        for risk in (4, 5):
            output = record_output(
                session,
                user=engineer,
                domain="finance",
                input_text="card 4111 1111 1111 1111",
                prompt=f"score {risk}",
                raw_output=f"risk_level: {risk}",
                parsed={"risk_level": risk, "numeric_score": 0.9},
                model_name="finance-lora",
                model_version=1,
            )
            route_output(session, user=engineer, output=output, policy=policy)


def test_empty_queue_says_where_items_come_from(people: dict[str, SignedIn]) -> None:
    at = open_app(people["compliance"], "compliance")
    assert not at.exception and "No open review items" in at.info[0].value
    at.button(key="claim_next").click().run()
    assert "Nothing to claim" in at.info[-1].value


def test_claim_refused_reject_then_edit(people: dict[str, SignedIn]) -> None:
    _seed_items(people)
    at = open_app(people["compliance"], "compliance")
    assert len(at.dataframe[0].value) == 2
    at.button(key="claim_next").click().run()
    claimed = at.session_state["compliance_claimed_item"]
    assert at.subheader[0].value.startswith(f"Item {claimed} (finance")
    assert "4111" not in at.text_area(key=f"input_{claimed}").value  # PII masked
    at.button(key=f"rejected_{claimed}").click().run()
    assert "a reason is required to mark it rejected" in at.error[0].value
    assert at.session_state["compliance_claimed_item"] == claimed  # still held
    at.text_area(key=f"edit_{claimed}").set_value("risk_level: 1").run()
    at.button(key=f"edited_{claimed}").click().run()
    assert at.success[-1].value == f"Item {claimed}: edited."
    assert len(at.dataframe[0].value) == 1


def test_verification_runs_as_a_job_and_is_not_recomputed(people: dict[str, SignedIn]) -> None:
    _seed_items(people)
    at = open_app(people["compliance"], "audit")
    assert not at.exception, at.exception
    assert "No verification has run yet" in at.info[0].value
    at.button(key="audit_verify_start").click().run()
    assert "waiting for a worker" in at.get("progress")[0].proto.text
    assert Worker(get_engine()).run_one() is not None
    at.run()
    assert at.success[0].value.startswith("Audit chain verified:") and "job 1, finished" in at.success[0].value
    with get_engine().begin() as conn:  # the chain breaks; the page shows the last result until verified again
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    at.run()
    assert at.success[0].value.startswith("Audit chain verified:")
    at.button(key="audit_verify_start").click().run()
    Worker(get_engine()).run_one()
    at.run()
    assert "Audit chain broken at row 2: content does not match its hash" in at.error[0].value


def test_log_filters_rates_and_exports(people: dict[str, SignedIn]) -> None:
    _seed_items(people)
    at = open_app(people["compliance"], "audit")
    log = at.dataframe[0].value
    assert {"review.routed", "output.created", "user.created"} <= set(log["event"])
    at.text_input(key="audit_action").input("review.").run()
    assert set(at.dataframe[0].value["event"]) == {"review.routed"}
    at.text_input(key="audit_action").input("").run()
    at.text_input(key="audit_actor").input("nobody").run()
    assert "No audit events match" in at.info[-1].value or any("No audit events match" in i.value for i in at.info)
    assert any("No decided review items yet" in i.value for i in at.info)
    at.button(key="export_items").click().run()
    assert any("row(s) written to" in s.value for s in at.success)


def test_analyst_is_refused_by_the_service(people: dict[str, SignedIn]) -> None:
    from streamlit.testing.v1 import AppTest

    from apps.auth import SESSION_KEY

    at = AppTest.from_string("from apps.views import audit\naudit.render()\n", default_timeout=30)
    at.session_state[SESSION_KEY] = people["analyst"]
    at.run()
    assert "role 'analyst' of user 'analyst' is not allowed" in at.error[0].value
