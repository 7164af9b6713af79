"""Numeric model, level map, fusion bounds, LLM selection under a budget, and the scoring cascade."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from domains.finance.features import compute_features
from domains.finance.llm import LocalLLM
from domains.finance.numeric import NumericModel, best_f1_threshold, prob_to_level
from domains.finance.pipeline import ASSESSMENT_COLUMNS, CascadePolicy, score_frame, select_for_llm
from domains.finance.risk_fusion import Band, fuse
from domains.finance.similar import InMemorySimilarCases
from domains.finance.synthetic import generate


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = generate(120, seed=2, days=20, fraud_rate=0.25)
    return frame, compute_features(frame)


@pytest.fixture(scope="module")
def model(data: tuple) -> NumericModel:
    frame, feats = data
    return NumericModel.fit(feats, frame["is_fraud"].to_numpy(), max_iter=40)


def test_prob_to_level_and_threshold() -> None:
    assert prob_to_level(np.array([0.0, 0.05, 0.2, 0.5, 0.7, 0.99])).tolist() == [0, 1, 2, 3, 4, 5]
    y = np.array([0, 0, 0, 1, 1])
    assert best_f1_threshold(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == pytest.approx(0.8)


def test_fusion_pools_log_odds_around_each_models_decision_point() -> None:
    t = 0.9
    prob = np.array([0.5, 0.5, 0.95, 0.999, 0.001, 0.9, 0.3])
    score = np.array([1.0, 0.0, np.nan, 0.0, 1.0, 0.5, 0.9])
    fused = fuse(prob, score, t)
    assert fused[2] == 0.95  # not adjudicated: the numeric score
    assert fused[0] > t > fused[1]  # where the numeric model is unsure, a sure LLM decides
    assert fused[3] >= t and fused[4] < t  # a confident numeric score survives the most contrary LLM
    assert fused[5] == pytest.approx(t)  # both exactly at their decision points
    # equal weights: the margins average in log-odds
    logit = lambda x: np.log(x / (1 - x))  # noqa: E731
    expected = 0.5 * (logit(0.3) - logit(t)) + 0.5 * (logit(0.9) - logit(0.5))
    assert logit(fused[6]) - logit(t) == pytest.approx(expected)
    np.testing.assert_allclose(fuse(prob, score, t, weight=0.0), prob)
    only_llm = fuse(prob, score, t, weight=1.0)
    assert (only_llm[[0, 4, 6]] >= t).all() and (only_llm[[1, 3]] < t).all()
    with pytest.raises(ValueError, match="weight"):
        fuse(prob, score, t, weight=1.5)


def test_fusion_centres_the_llm_on_its_calibrated_decision_point() -> None:
    t = 0.9
    prob = np.array([0.9, 0.9, 0.9])
    score = np.array([0.7, 0.6, 0.8])
    fused = fuse(prob, score, t, llm_threshold=0.7)
    assert fused[0] == pytest.approx(t)  # the LLM at its own (calibrated) decision point: no pull
    assert fused[1] < t < fused[2]  # 0.6 now argues for legitimate although it is above 0.5
    assert (fuse(prob, score, t)[1:] > t).all()  # uncalibrated, both lean to fraud


def test_selection_respects_budget_and_priorities() -> None:
    prob = np.array([0.01, 0.5, 0.45, 0.95, 0.3, 0.99, 0.02])
    band = Band(0.25, 0.9)
    chosen, audit = select_for_llm(prob, band, 0.5, CascadePolicy(budget=3, audit_rate=0.0))
    assert chosen.tolist() == [1, 2, 4] and not audit.any()  # band, nearest the threshold first
    chosen, _ = select_for_llm(prob, band, 0.5, CascadePolicy(budget=10, audit_rate=0.0))
    assert chosen.tolist() == [1, 2, 4, 5, 3]  # then high scores, highest first
    chosen, audit = select_for_llm(prob, band, 0.5, CascadePolicy(budget=40, audit_rate=1.0))
    assert audit.sum() == 4 and set(np.flatnonzero(audit)) <= set(chosen.tolist())
    assert len(select_for_llm(prob, band, 0.5, CascadePolicy(budget=0))[0]) == 0


def test_numeric_model_ranks_fraud_and_round_trips(data: tuple, model: NumericModel, tmp_path: Path) -> None:
    frame, feats = data
    prob = model.predict(feats)
    assert prob[frame["is_fraud"] == 1].mean() > prob[frame["is_fraud"] == 0].mean() + 0.5
    loaded = NumericModel.load(model.save(tmp_path / "m.joblib"))
    np.testing.assert_allclose(loaded.predict(feats), prob)


def test_cascade_with_tiny_llm(data: tuple, model: NumericModel, tiny_model_dir: Path) -> None:
    frame, feats = data
    y = frame["is_fraud"].to_numpy()
    llm = LocalLLM(str(tiny_model_dir))
    similar = InMemorySimilarCases(pd.concat([frame, feats.drop(columns=["amount"])], axis=1), y)
    head = frame
    out = score_frame(head, model, llm=llm, similar=similar, policy=CascadePolicy(budget=4, max_new_tokens=8))
    assert list(out.columns) == list(ASSESSMENT_COLUMNS) and len(out) == len(frame)
    assert out["adjudicated"].sum() == 4
    adjudicated = out[out["adjudicated"]]
    assert adjudicated["llm_answer"].notna().all() and adjudicated["parse_ok"].notna().all()
    # the random tiny model does not answer in the format: parse failures, no level, fused = numeric
    failed = out[out["parse_ok"] == False]  # noqa: E712
    assert failed["llm_level"].isna().all()
    np.testing.assert_allclose(failed["fused_score"], failed["numeric_score"])
    assert out["risk_level"].between(0, 5).all()
    assert not out.loc[~out["adjudicated"], "parse_ok"].notna().any()


def test_similar_cases_returns_labelled_examples(data: tuple) -> None:
    frame, feats = data
    y = frame["is_fraud"].to_numpy()
    similar = InMemorySimilarCases(pd.concat([frame, feats.drop(columns=["amount"])], axis=1), y)
    fraud_row = feats[y == 1].iloc[:1]
    examples = similar.similar(fraud_row, 3)[0]
    assert len(examples) == 3 and examples[0].level >= 3  # the nearest case is itself-like fraud
    assert "rule signals" in examples[0].summary


def test_store_similar_cases_through_lancedb(data: tuple, tmp_path: Path) -> None:
    from core.retrieval.lance_store import LanceStore
    from domains.finance.similar import StoreSimilarCases, index_cases

    frame, feats = data
    y = frame["is_fraud"].to_numpy()
    rows = pd.concat([frame, feats.drop(columns=["amount"])], axis=1)
    store = LanceStore(tmp_path / "lancedb")
    assert index_cases(store, rows, y, collection="finance_cases", tenant="bank-a") == len(frame)
    assert index_cases(store, rows, y, collection="finance_cases", tenant="bank-a") == len(frame)  # idempotent
    assert store.count("finance_cases", tenant="bank-a") == len(frame)
    similar = StoreSimilarCases(store, "finance_cases", tenant="bank-a")
    fraud_row = feats[y == 1].iloc[:1]
    examples = similar.similar(fraud_row, 3)[0]
    assert len(examples) == 3 and examples[0].level >= 3 and "rule signals" in examples[0].summary
    assert StoreSimilarCases(store, "finance_cases", tenant="bank-b").similar(fraud_row, 3) == [[]]
    with pytest.raises(Exception, match="finance_nope"):
        StoreSimilarCases(store, "finance_nope")
