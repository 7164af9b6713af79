"""Calibrated risk levels (fraud rate rising with the level, every level used, on held-out data) and the learned
fusion (weight learned on the validation slice, never on test rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domains.finance.backtest import run_backtest
from domains.finance.calibration import LevelCalibration
from domains.finance.features import compute_features
from domains.finance.llm import LocalLLM
from domains.finance.pipeline import CascadePolicy
from domains.finance.risk_fusion import fit_fusion
from domains.finance.screen import fit_screen
from domains.finance.synthetic import generate


def test_levels_rise_with_fraud_rate_and_are_all_used_on_held_out_data() -> None:
    history = generate(300, seed=11, days=30, fraud_rate=0.15)
    held_out = generate(300, seed=12, days=30, fraud_rate=0.15)  # another seed: rows the levels never saw
    y = history["is_fraud"].to_numpy()
    numeric = fit_screen(history, y, compute_features(history), max_iter=60)
    calibration = numeric.calibration
    assert isinstance(calibration, LevelCalibration) and calibration.version.startswith("cal-")
    lows = [b.low for b in calibration.bands]
    highs = [b.high for b in calibration.bands]
    assert lows == sorted(lows) and highs == sorted(highs) and all(lo <= hi for lo, hi in zip(lows, highs, strict=True))
    level = numeric.levels(numeric.predict(compute_features(held_out)))
    y_out = held_out["is_fraud"].to_numpy()
    counts = np.bincount(level, minlength=6)
    assert (counts > 0).all(), counts
    rates = [y_out[level == k].mean() for k in range(6)]
    assert rates == sorted(rates), rates  # monotone in level
    assert counts[0] > len(level) / 2 and rates[0] < 0.01 and rates[5] > 0.5  # 0: safe to ignore; 5: act now


def test_fusion_learns_a_weight_only_when_the_llm_adds_something() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(int)
    prob = np.clip(0.3 * y + rng.normal(0.3, 0.15, 2000), 0.001, 0.999)  # a weak screen
    informative = np.where(rng.random(2000) < 0.3, 0.2 + 0.6 * y, np.nan)  # the LLM knows on its 30%
    noise = np.where(np.isnan(informative), np.nan, rng.random(2000))
    learned = fit_fusion(y, prob, informative, 0.5, llm_name="x")
    assert learned.llm_used and learned.weight > 0 and learned.ap_fused > learned.ap_numeric
    useless = fit_fusion(y, prob, noise, 0.5, llm_name="x")
    assert not useless.llm_used and useless.weight == 0 and "no gain" in useless.reason
    few = fit_fusion(y, prob, np.where(np.arange(2000) < 3, 0.5, np.nan), 0.5)
    assert not few.llm_used and "only 3 validation rows" in few.reason


def test_fusion_and_levels_never_see_test_rows(tiny_model_dir: Path) -> None:
    frame = generate(60, seed=4, days=20, fraud_rate=0.3)
    y = frame["is_fraud"].to_numpy()
    llm = LocalLLM(str(tiny_model_dir))
    policy = CascadePolicy(budget=6, k_examples=0, max_new_tokens=4)
    first = run_backtest(frame, y, llm=llm, policy=policy)
    test = first.test_rows
    assert test is not None
    scrambled = y.copy()
    scrambled[test] = np.random.default_rng(1).permutation(scrambled[test]) ^ 1  # any other test labels
    second = run_backtest(frame, scrambled, llm=llm, policy=policy)
    assert first.numeric is not None and second.numeric is not None
    assert first.metrics["fusion"] == second.metrics["fusion"]
    assert first.numeric.calibration.cuts == second.numeric.calibration.cuts  # type: ignore[union-attr]
    assert first.metrics["llm_cost"]["validation_calls"] == second.metrics["llm_cost"]["validation_calls"]
    # the tiny random model never answers in the format: no gain, so no LLM calls on the test part
    assert first.metrics["fusion"]["llm_used"] is False and first.metrics["llm_cost"]["test_calls"] == 0
    levels = first.metrics["levels"]
    assert [lv["level"] for lv in levels] == list(range(6)) and sum(lv["n"] for lv in levels) == len(test)


@pytest.mark.parametrize("score", [np.zeros(50), np.ones(50)])
def test_calibration_refuses_a_slice_without_both_labels(score: np.ndarray) -> None:
    from core.errors import ValidationError

    with pytest.raises(ValidationError, match="fraud and legitimate rows"):
        LevelCalibration.fit(score, np.zeros(50))
