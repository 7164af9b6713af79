"""Synthetic transactions: seeded, labelled schemes with the signals each scheme is defined by."""

import numpy as np

from domains.finance.features import compute_features, reasons_for
from domains.finance.ingest import CANONICAL
from domains.finance.synthetic import SCHEMES, generate, generate_new_scheme


def test_seeded_and_labelled() -> None:
    a, b = generate(80, seed=3, days=15, fraud_rate=0.2), generate(80, seed=3, days=15, fraud_rate=0.2)
    assert a.equals(b)
    assert not a.equals(generate(80, seed=4, days=15, fraud_rate=0.2))
    assert set(CANONICAL) <= set(a.columns)
    assert set(a["scheme"]) == {"none", *SCHEMES}
    assert (a["is_fraud"] == (a["scheme"] != "none")).all()
    assert a["timestamp"].is_monotonic_increasing and (a["amount"] >= 0).all()


def test_schemes_carry_their_signals() -> None:
    frame = generate(300, seed=0, days=30, fraud_rate=0.2)
    feats = compute_features(frame)
    fired = reasons_for(feats)
    by = {s: [set(r) for r, sc in zip(fired, frame["scheme"], strict=True) if sc == s] for s in SCHEMES}
    share = lambda s, name: np.mean([name in r for r in by[s]])  # noqa: E731
    assert share("account_takeover", "new_location") > 0.8 and share("account_takeover", "night_time") > 0.8
    assert share("account_takeover", "large_amount") > 0.5
    assert share("card_testing", "card_testing") > 0.5
    assert share("mule", "night_time") > 0.8
    assert np.mean([len(r) > 0 for r in fired]) < 0.5  # most legitimate rows fire nothing


def test_new_scheme() -> None:
    frame = generate_new_scheme(50, seed=1, days=15)
    assert set(frame["scheme"]) == {"none", "new_scheme"} and frame["is_fraud"].sum() > 0
