"""The risk scoring page through Streamlit's AppTest: mapping form, bad rows by number, scores, store and route."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from apps.auth import SESSION_KEY, SignedIn
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import User
from core.review.tables import ReviewItem
from domains.finance.features import compute_features
from domains.finance.numeric import NumericModel
from domains.finance.service import default_numeric_path
from domains.finance.synthetic import generate
from domains.finance.tables import Assessment

SCRIPT = "from apps.auth import current_user\nfrom domains.finance.page import render\nrender(current_user())\n"


@pytest.fixture
def analyst(tmp_path: Path) -> tuple[SignedIn, Path]:
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        user = User(username="ana", role="analyst", password_hash="-")
        session.add(user)
        session.flush()
        signed = SignedIn(user.id, user.username, user.role)
    history = generate(40, seed=1, days=10, fraud_rate=0.3)
    NumericModel.fit(compute_features(history), history["is_fraud"].to_numpy(), max_iter=20).save(
        default_numeric_path()
    )
    rows = generate(6, seed=2, days=5, fraud_rate=0.3).drop(columns=["is_fraud", "scheme"]).head(40)
    rows = rows.rename(columns={"amount": "amt"})
    rows.loc[2, "amt"] = -4
    path = tmp_path / "tx.csv"
    rows.to_csv(path, index=False)
    return signed, path


def _app(user: SignedIn) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=60)
    at.session_state[SESSION_KEY] = user
    return at.run()


def test_map_score_store_and_route(analyst: tuple[SignedIn, Path]) -> None:
    user, path = analyst
    at = _app(user)
    assert not at.exception and "Upload a file" in at.info[0].value
    at.text_input(key="finance_path").input(str(path)).run()
    assert at.selectbox(key="finance_map_amount").value == "(none)"  # no column of that name: the form asks
    at.selectbox(key="finance_map_amount").select("amt")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, at.exception
    assert "1 unscorable row(s) rejected" in at.warning[0].value
    assert at.dataframe[0].value.to_dict("records") == [{"row": 3, "reason": "negative amount"}]
    assert at.dataframe[1].value["level"].tolist() == list(range(6))  # per level: count and promised band
    scored = at.dataframe[2].value
    assert len(scored) == 39 and scored["risk_level"].between(0, 5).all()
    at.button(key="finance_store").click().run()
    assert not at.exception and "queued for review" in at.info[0].value
    with session_scope(get_engine()) as session:
        assert session.scalar(select(func.count()).select_from(Assessment)) == 39
        assert session.scalar(select(func.count()).select_from(ReviewItem)) >= 1


def test_unmapped_required_field_is_one_clear_error(analyst: tuple[SignedIn, Path]) -> None:
    user, path = analyst
    at = _app(user)
    at.text_input(key="finance_path").input(str(path)).run()
    at.button[0].click().run()
    assert not at.exception and "required field(s) amount not found" in at.error[0].value


def test_other_roles_are_refused(analyst: tuple[SignedIn, Path]) -> None:
    at = _app(SignedIn(99, "cora", "compliance"))
    assert "for analysts and engineers" in at.error[0].value


def test_background_job_scores_and_the_page_opens_its_batch(analyst: tuple[SignedIn, Path]) -> None:
    from core.jobs import service as jobs
    from core.jobs.worker import Worker
    from domains.finance.jobs import KIND

    user, path = analyst
    at = _app(user)
    at.text_input(key="finance_path").input(str(path)).run()
    at.selectbox(key="finance_map_amount").select("amt")
    at.button[1].click().run()  # "Score in the background"
    assert not at.exception, at.exception
    assert "waiting for a worker" in at.get("progress")[0].proto.text  # queued until a worker claims it
    assert Worker(get_engine(), kinds=[KIND]).run_one() is not None
    at.run()
    assert not at.exception, at.exception
    assert "39 of 40 rows scored, 1 rejected" in at.caption[0].value
    assert at.dataframe[0].value.to_dict("records") == [{"row": 3, "reason": "negative amount"}]
    assert len(at.dataframe[2].value) == 39  # the assessments table, from the job's kept batch
    with session_scope(get_engine()) as session:
        job = jobs.list_jobs(session, user=session.get(User, user.id), kind=KIND)[0]
        assert job.status == "succeeded" and job.result["counts"]["scored"] == 39
    zeros = int(at.dataframe[1].value["transactions"][0])
    at.multiselect(key="finance_f_levels").set_value([0]).run()  # the level filter
    assert not at.exception, at.exception
    assert any(f"{zeros} of 39 assessments match" in c.value for c in at.caption)
    assert (at.dataframe[2].value["risk_level"] == 0).all()


def test_background_job_on_a_missing_file_fails_with_its_path(analyst: tuple[SignedIn, Path], tmp_path: Path) -> None:
    from core.jobs import service as jobs
    from core.jobs.worker import Worker
    from domains.finance.jobs import KIND

    user, _ = analyst
    gone = tmp_path / "gone.csv"
    with session_scope(get_engine()) as session:
        jobs.submit(session, user=session.get(User, user.id), kind=KIND, params={"path": str(gone)})
    Worker(get_engine(), kinds=[KIND]).run_one()
    at = _app(user)
    assert not at.exception
    assert f"no transactions file at {gone}" in at.error[0].value
