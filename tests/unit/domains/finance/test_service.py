"""One scoring service behind every face: a history with unknown and historic currency codes, unknown countries and
a few truly broken rows is scored row for row (only the broken rows rejected, with reasons) and the CLI, the API
and the page's service path give identical assessments, stored with the versions that produced them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from apps.auth import SESSION_KEY, SignedIn
from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import User
from core.errors import PermissionDenied
from core.review.tables import ModelOutput
from domains.finance.api import make_router
from domains.finance.cli import app as finance_cli
from domains.finance.features import compute_features
from domains.finance.page import RESULT_KEY
from domains.finance.screen import fit_screen
from domains.finance.service import default_numeric_path, score_batch, store_and_route
from domains.finance.synthetic import generate
from domains.finance.tables import Assessment

BROKEN = {3: ("amount", "lots"), 8: ("timestamp", "31/31/2026"), 15: ("account_id", None)}  # 0-based position
COMPARED = ["transaction_id", "source_row", "numeric_score", "risk_level", "fused_score", "reasons", "odd_fields"]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return generate(80, seed=21, days=20, fraud_rate=0.3)


@pytest.fixture
def odd_file(history: pd.DataFrame, tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    y = history["is_fraud"].to_numpy()
    fit_screen(history, y, compute_features(history), max_iter=30).save(default_numeric_path())
    rows = generate(12, seed=22, days=6, fraud_rate=0.3).drop(columns=["is_fraud", "scheme"]).head(60).copy()
    rows = rows.astype({"amount": object, "timestamp": str, "account_id": object, "currency": object})
    rows.loc[[1, 4, 9], "currency"] = ["DEM", "FRF", "VEF"]  # withdrawn ISO 4217 codes: known
    rows.loc[[2, 5, 11, 20], "currency"] = ["XQQ", "BTC", "ZZZ", "XQQ"]  # not ISO 4217: unknown, still scored
    rows.loc[[6, 7], "country"] = ["DD", "Q1"]  # DD: withdrawn ISO 3166-3 (known); Q1: unknown
    for pos, (column, value) in BROKEN.items():
        rows.loc[pos, column] = value
    path = tmp_path / "odd.csv"
    rows.to_csv(path, index=False)
    return path, rows


@pytest.fixture
def analyst() -> SignedIn:
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        user = User(username="ana", role="analyst", password_hash="-")
        session.add(user)
        session.flush()
        return SignedIn(user.id, user.username, user.role)


def test_every_scorable_row_is_scored_and_counted(odd_file: tuple[Path, pd.DataFrame]) -> None:
    path, rows = odd_file
    result = score_batch(None, user=None, frame=pd.read_csv(path))
    assert [(b.row, b.reason) for b in result.rejected] == [
        (4, "amount is not a number"),
        (9, "unparseable timestamp"),
        (16, "missing required account_id"),
    ]
    assert result.counts() == {"input": len(rows), "scored": len(rows) - 3, "rejected": 3, "flagged": 5}
    messages = [o.message() for o in result.odd]
    assert messages == [
        "4 rows with an unknown currency code, scored; examples: row 3 'XQQ', row 6 'BTC', row 12 'ZZZ', row 21 'XQQ'",
        "1 row with an unknown country code, scored; examples: row 8 'Q1'",
    ]
    scored = result.assessments
    assert scored.set_index("source_row").loc[[2, 5, 10], "odd_fields"].tolist() == ["", "", ""]  # DEM, FRF, VEF
    assert scored.set_index("source_row").loc[8, "odd_fields"] == "unknown_country"
    assert (scored.loc[scored["risk_level"] >= 2, "reasons"] != "").all()  # every flagged row says why
    assert "LLM skipped" in result.plan.note or "LLM not measured" in result.plan.note
    assert result.versions.numeric.startswith("numeric@") and result.versions.calibration.startswith("cal-")


def test_cli_api_and_page_give_identical_assessments(
    odd_file: tuple[Path, pd.DataFrame], analyst: SignedIn, tmp_path: Path
) -> None:
    path, rows = odd_file
    out = tmp_path / "scored.csv"
    cli = CliRunner().invoke(finance_cli, ["score", "--in", str(path), "--out", str(out), "--store", "--as", "ana"])
    assert cli.exit_code == 0, cli.output
    assert "row 4: amount is not a number" in cli.output and "4 rows with an unknown currency code" in cli.output
    from_cli = pd.read_csv(out, keep_default_na=False)

    api = FastAPI()
    api.include_router(make_router())
    payload = pd.read_csv(path).astype(object)
    payload = payload.where(payload.notna(), None).to_dict("records")
    response = TestClient(api).post("/v1/finance/score", json={"transactions": payload, "store": True, "user": "ana"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [b["row"] for b in body["bad_rows"]] == [4, 9, 16] and body["rows"]["scored"] == len(rows) - 3
    from_api = pd.DataFrame(body["assessments"])

    at = AppTest.from_string(
        "from apps.auth import current_user\nfrom domains.finance.page import render\nrender(current_user())\n",
        default_timeout=60,
    )
    at.session_state[SESSION_KEY] = analyst
    at.run()
    at.text_input(key="finance_path").input(str(path)).run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    from_page = at.session_state[RESULT_KEY]["result"].assessments

    for other in (from_api, from_page):
        left = from_cli[COMPARED].reset_index(drop=True)
        right = other[COMPARED].reset_index(drop=True).astype(left.dtypes.to_dict())
        pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-9)
    with session_scope(get_engine()) as session:
        stored = session.scalars(select(Assessment)).all()
        assert len(stored) == 2 * (len(rows) - 3)  # the CLI and the API stored; the page has not been asked to
        assert len({a.calibration_version for a in stored}) == 1 and stored[0].calibration_version.startswith("cal-")
        assert all(a.numeric_version and a.numeric_version.startswith("numeric@") for a in stored)
        assert {tuple(a.odd_fields) for a in stored} >= {("unknown_currency",), ("unknown_country",), ()}
        outputs = session.scalars(select(ModelOutput).where(ModelOutput.domain == "finance")).all()
        assert outputs and all(o.parsed["reasons"] for o in outputs if o.parsed and o.parsed["risk_level"] >= 2)
        assert all(o.parsed["calibration_version"] == stored[0].calibration_version for o in outputs if o.parsed)


def test_storing_needs_a_scoring_role(odd_file: tuple[Path, pd.DataFrame]) -> None:
    path, _ = odd_file
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        cora = User(username="cora", role="compliance", password_hash="-")
        session.add(cora)
        session.flush()
        with pytest.raises(PermissionDenied, match="score transactions"):
            score_batch(session, user=cora, frame=pd.read_csv(path))
        result = score_batch(session, user=None, frame=pd.read_csv(path))
        with pytest.raises(PermissionDenied, match="store and route"):
            store_and_route(session, user=cora, result=result)
    assert np.isfinite(result.assessments["fused_score"]).all()
