"""Features: hand-computed values for every feature, and causality (future rows never change past features)."""

import numpy as np
import pandas as pd
import pytest

from domains.finance.features import EARTH_RADIUS_KM, compute_features, reasons_for
from domains.finance.synthetic import generate

T0 = pd.Timestamp("2026-01-01 12:00:00")


def _tx(account: str, minutes: list[float], **cols: list) -> pd.DataFrame:
    n = len(minutes)
    frame = pd.DataFrame(
        {
            "transaction_id": [f"{account}{i}" for i in range(n)],
            "account_id": account,
            "timestamp": [T0 + pd.Timedelta(minutes=m) for m in minutes],
            "amount": cols.pop("amount", [10.0] * n),
            "lat": cols.pop("lat", [0.0] * n),
            "lng": cols.pop("lng", [0.0] * n),
            "merchant_id": cols.pop("merchant_id", ["m1"] * n),
        }
    )
    for name, values in cols.items():
        frame[name] = values
    return frame


def test_interval_and_its_robust_z() -> None:
    f = compute_features(_tx("I", [0, 60, 120, 180, 180 + 10 / 60]))
    np.testing.assert_allclose(f["interval_s"].to_numpy()[1:], [3600, 3600, 3600, 10])
    assert np.isnan(f["interval_s"].iloc[0])
    # rows 1-3 have fewer than 3 past intervals: no baseline
    np.testing.assert_allclose(f["interval_z"].to_numpy()[:4], 0.0)
    expected = (np.log1p(10) - np.log1p(3600)) / 1e-3  # MAD 0 -> scale is the 1e-3 floor
    assert f["interval_z"].iloc[4] == pytest.approx(expected)
    assert "abnormal_interval" in reasons_for(f)[4]
    assert "abnormal_interval" not in reasons_for(f)[3]


def test_amount_against_history() -> None:
    f = compute_features(_tx("M", [0, 60, 120, 180], amount=[10.0, 20.0, 30.0, 300.0]))
    past = np.log1p([10.0, 20.0, 30.0])
    med = np.median(past)
    mad = np.median(np.abs(past - med))
    assert f["amount_z"].iloc[3] == pytest.approx((np.log1p(300.0) - med) / (1.4826 * mad + 1e-3))
    assert f["amount_ratio"].iloc[3] == pytest.approx(301.0 / 21.0)
    assert f["amount_z"].iloc[2] == 0.0  # two past amounts only
    assert "large_amount" in reasons_for(f)[3]


def test_location_change_and_travel_speed() -> None:
    f = compute_features(_tx("L", [0, 60, 120, 180], lng=[0.0, 0.0, 0.0, 10.0]))
    km = EARTH_RADIUS_KM * np.radians(10.0)  # 10 degrees of longitude on the equator
    assert f["dist_prev_km"].iloc[3] == pytest.approx(km)
    assert f["dist_home_km"].iloc[3] == pytest.approx(km)
    assert f["speed_kmh"].iloc[3] == pytest.approx(km)  # in one hour
    assert f["dist_prev_km"].iloc[1] == pytest.approx(0.0)
    assert {"new_location", "impossible_travel"} <= set(reasons_for(f)[3])


def test_local_night_time_uses_longitude() -> None:
    three_am = [-9 * 60.0, -9 * 60.0 + 1]  # 03:00 UTC
    f = compute_features(pd.concat([_tx("N", three_am[:1]), _tx("E", three_am[1:], lng=[150.0])], ignore_index=True))
    assert f["local_hour"].tolist() == [3.0, 13.0]  # 150E is UTC+10
    assert f["night"].tolist() == [1.0, 0.0]
    assert reasons_for(f)[0] == ["night_time"]


def test_velocity_windows() -> None:
    f = compute_features(_tx("V", [0, 10, 20, 30, 75], amount=[10.0, 20.0, 30.0, 40.0, 50.0]))
    assert f["count_1h"].tolist() == [0, 1, 2, 3, 2]
    assert f["count_24h"].tolist() == [0, 1, 2, 3, 4]
    assert f["amount_24h"].tolist() == [0, 10, 30, 60, 100]
    assert f["count_1h"].iloc[3] < 4 and "high_velocity" not in reasons_for(f)[3]
    g = compute_features(_tx("W", [0, 1, 2, 3, 4]))
    assert "high_velocity" in reasons_for(g)[4]


def test_card_testing_burst() -> None:
    f = compute_features(_tx("C", [0, 1, 2, 3], amount=[1.0, 2.0, 1.5, 100.0]))
    assert f["small_count_1h"].tolist() == [1, 2, 3, 0]
    assert "card_testing" in reasons_for(f)[2]
    assert "card_testing" not in reasons_for(f)[1]


def test_new_merchant() -> None:
    f = compute_features(_tx("R", [0, 60, 120, 180], merchant_id=["m1", "m1", "m2", "m1"]))
    assert f["new_merchant"].tolist() == [0, 0, 1, 0]  # the account's first transaction is not "new"
    assert reasons_for(f)[2] == ["new_merchant"]


def test_accounts_do_not_mix_and_order_is_kept() -> None:
    a = _tx("A", [0, 60, 120])
    b = _tx("B", [30, 90], lng=[50.0, 50.0])
    mixed = pd.concat([a, b], ignore_index=True).sample(frac=1.0, random_state=3)
    f = compute_features(mixed)
    assert list(f.index) == list(mixed.index)
    by_id = dict(zip(mixed["transaction_id"], f["dist_prev_km"], strict=True))
    assert by_id["B1"] == pytest.approx(0.0)  # B's previous is B0, not A's row in between
    assert by_id["A1"] == pytest.approx(0.0)


def test_features_are_causal() -> None:
    frame = generate(60, seed=5, days=20, fraud_rate=0.2)
    cutoff = frame["timestamp"].quantile(0.6)
    past = frame[frame["timestamp"] <= cutoff]
    future = frame[frame["timestamp"] > cutoff].copy()
    rng = np.random.default_rng(0)
    future["amount"] = rng.permutation(future["amount"].to_numpy()) * 7
    future["lat"] = rng.uniform(-60, 60, len(future))
    future["merchant_id"] = rng.permutation(future["merchant_id"].to_numpy())
    future["timestamp"] = cutoff + pd.to_timedelta(rng.uniform(1, 86400 * 5, len(future)), unit="s")
    changed = pd.concat([past, future.sample(frac=1.0, random_state=1)])
    before = compute_features(frame).set_index(frame["transaction_id"]).loc[past["transaction_id"]]
    after = compute_features(changed).set_index(changed["transaction_id"]).loc[past["transaction_id"]]
    pd.testing.assert_frame_equal(before, after)
    assert len(past) > 1000 and len(future) > 500
