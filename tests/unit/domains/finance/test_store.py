"""Assessments are stored with all three variants and the review routing fields, on SQLite and PostgreSQL."""

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from domains.finance.pipeline import ASSESSMENT_COLUMNS
from domains.finance.store import store_assessments
from domains.finance.tables import Assessment
from domains.finance.versions import Versions


def test_store_assessments(db_session: Session) -> None:
    scored = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2"],
            "account_id": ["a", "a"],
            "numeric_score": [0.5, 0.01],
            "numeric_level": [3, 0],
            "adjudicated": [True, False],
            "audit_sample": [False, False],
            "llm_level": pd.array([5, pd.NA], dtype="Int64"),
            "llm_score": [0.93, np.nan],
            "parse_ok": [True, None],
            "llm_answer": ["Risk level: 5; Basis: large_amount", None],
            "llm_reasons": ["large_amount", None],
            "fused_score": [0.75, 0.01],
            "risk_level": [4, 0],
            "disagreement": pd.array([2, pd.NA], dtype="Int64"),
            "reasons": ["large_amount,night_time", ""],
            "prompt": ["<|im_start|>system ... Risk level: ", None],
        }
    )
    assert list(scored.columns) == list(ASSESSMENT_COLUMNS)
    versions = Versions(numeric="numeric@abc", llm="finance-lora:v2", calibration="cal-123")
    assert store_assessments(db_session, scored=scored, batch_id="b1", versions=versions) == 2
    rows = db_session.scalars(select(Assessment).order_by(Assessment.transaction_id)).all()
    first, second = rows
    assert (first.llm_level, first.parse_ok, first.disagreement, first.risk_level) == (5, True, 2, 4)
    assert first.reasons == ["large_amount", "night_time"] and first.model_version == versions.label()
    assert (first.numeric_version, first.llm_version, first.calibration_version) == (
        "numeric@abc",
        "finance-lora:v2",
        "cal-123",
    )
    assert first.prompt.endswith("Risk level: ") and second.prompt is None and second.llm_version is None
    assert (second.llm_level, second.parse_ok, second.disagreement, second.reasons) == (None, None, None, [])
    assert np.isclose(first.fused_score, 0.75) and np.isclose(first.llm_score, 0.93) and second.llm_score is None
