"""Seeded synthetic transaction histories with labelled fraud schemes, for tests, the demo and the default corpus.

Legitimate activity: each account has a home location, a typical amount, a typical gap between transactions, a
handful of regular merchants and daytime habits. Fraud schemes are injected as extra rows on chosen accounts:

- `account_takeover`: a large transfer at night from a far-away location, new device and new merchant.
- `card_testing`: a burst of tiny amounts at several merchants within minutes.
- `mule`: rapid in/out transfers of medium-large amounts within minutes of each other.
- `merchant_collusion`: round amounts at a small ring of colluding merchants the account never used before.
- `new_scheme` (only from `generate_new_scheme`): subscription draining, i.e. repeated mid-size charges at a fixed
  short interval to one new merchant, used to test adaptation to a scheme the models were not fitted on.

Everything is vectorised numpy so a million rows take seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCHEMES = ("account_takeover", "card_testing", "mule", "merchant_collusion")
EPOCH = np.datetime64("2026-01-01T00:00:00", "s")
CITIES = np.array(
    [
        (40.71, -74.01, "US", "NY"),
        (34.05, -118.24, "US", "CA"),
        (51.51, -0.13, "GB", "LDN"),
        (48.86, 2.35, "FR", "IDF"),
        (52.52, 13.40, "DE", "BE"),
        (35.68, 139.69, "JP", "13"),
        (31.23, 121.47, "CN", "SH"),
        (-33.87, 151.21, "AU", "NSW"),
    ],
    dtype=object,
)
CURRENCY_BY_COUNTRY = {"US": "USD", "GB": "GBP", "FR": "EUR", "DE": "EUR", "JP": "JPY", "CN": "CNY", "AU": "AUD"}
LEGIT_DESCRIPTIONS = np.array(
    [
        "grocery purchase",
        "monthly utility bill",
        "coffee shop",
        "online order",
        "restaurant dinner",
        "fuel station",
        "pharmacy",
        "transfer to savings",
        "salary related transfer",
        "public transport top-up",
    ]
)
SCHEME_DESCRIPTIONS = {
    "account_takeover": ["urgent wire to new beneficiary", "transfer requested after password reset", "online order"],
    "card_testing": ["small online charge", "verification charge", "online order"],
    "mule": ["incoming transfer forwarded", "outgoing transfer to third party", "transfer to savings"],
    "merchant_collusion": ["gift card bulk purchase", "electronics resale voucher", "online order"],
    "new_scheme": ["subscription renewal", "recurring membership fee", "online order"],
}
MCCS = np.array(["5411", "5812", "5814", "5541", "5912", "5999", "4111", "4900", "5732", "6011"])
COLLUDING_MERCHANTS = np.array([9_000_001, 9_000_002, 9_000_003])


def _frame(
    *,
    account: np.ndarray,
    seconds: np.ndarray,
    amount: np.ndarray,
    merchant: np.ndarray,
    channel: np.ndarray,
    city: np.ndarray,
    jitter: np.ndarray,
    device: np.ndarray,
    description: np.ndarray,
    scheme: np.ndarray,
) -> pd.DataFrame:
    lat = CITIES[city, 0].astype(float) + jitter[:, 0]
    lng = CITIES[city, 1].astype(float) + jitter[:, 1]
    country = CITIES[city, 2].astype(str)
    return pd.DataFrame(
        {
            "account_id": np.char.add("A", account.astype(str)),
            "timestamp": EPOCH + seconds.astype("timedelta64[s]"),
            "amount": np.round(amount, 2),
            "currency": pd.Series(country).map(CURRENCY_BY_COUNTRY).to_numpy(),
            "merchant_id": np.char.add("M", merchant.astype(str)),
            "mcc": MCCS[merchant % len(MCCS)],  # a merchant's category follows from its id (no random draw)
            "channel": channel,
            "country": country,
            "region": CITIES[city, 3].astype(str),
            "lat": np.round(lat, 4),
            "lng": np.round(lng, 4),
            "device_id": np.char.add("D", device.astype(str)),
            "description": description,
            "scheme": scheme,
        }
    )


def _local_day_seconds(rng: np.random.Generator, n: int, home_lng: np.ndarray, night: bool) -> np.ndarray:
    """Seconds into a UTC day so that the local hour (offset round(lng/15)) is daytime or night-time."""
    hours = rng.uniform(0.5, 5.0, n) if night else np.clip(rng.normal(14.0, 3.0, n), 7.0, 22.5)
    offset = np.round(home_lng / 15.0)
    return (((hours - offset) % 24.0) * 3600.0).astype(np.int64)


def _legit(rng: np.random.Generator, n_accounts: int, days: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    home = rng.integers(0, len(CITIES), n_accounts)
    home_lng = CITIES[home, 1].astype(float)
    typical = np.exp(rng.normal(3.5, 0.8, n_accounts))  # typical amount per account
    per_day = rng.uniform(0.3, 3.0, n_accounts)
    counts = np.maximum(rng.poisson(per_day * days), 3)
    account = np.repeat(np.arange(n_accounts), counts)
    n = len(account)
    day = rng.integers(0, days, n)
    seconds = day * 86400 + _local_day_seconds(rng, n, home_lng[account], night=False)
    # A few legitimate oddities so reasons alone do not equal fraud: travel, big purchases, late nights.
    odd = rng.random(n)
    city = home[account].copy()
    travel = odd < 0.01
    city[travel] = rng.integers(0, len(CITIES), travel.sum())
    late = (odd >= 0.01) & (odd < 0.03)
    seconds[late] = day[late] * 86400 + _local_day_seconds(rng, late.sum(), home_lng[account][late], night=True)
    amount = typical[account] * np.exp(rng.normal(0.0, 0.5, n))
    big = (odd >= 0.03) & (odd < 0.04)
    amount[big] *= rng.uniform(4, 12, big.sum())
    merchant = account * 10 + rng.integers(0, 6, n)
    new_m = rng.random(n) < 0.05
    merchant[new_m] = rng.integers(1_000_000, 2_000_000, new_m.sum())
    frame = _frame(
        account=account,
        seconds=seconds,
        amount=amount,
        merchant=merchant,
        channel=rng.choice(np.array(["card", "online", "transfer", "atm"]), n, p=[0.55, 0.25, 0.15, 0.05]),
        city=city,
        jitter=rng.normal(0, 0.05, (n, 2)),
        device=account * 3 + (rng.random(n) < 0.05),
        description=LEGIT_DESCRIPTIONS[rng.integers(0, len(LEGIT_DESCRIPTIONS), n)],
        scheme=np.full(n, "", dtype=object),
    )
    return frame, {"home": home, "typical": typical, "home_lng": home_lng}


def _scheme_rows(
    rng: np.random.Generator, scheme: str, victims: np.ndarray, info: dict[str, np.ndarray], days: int
) -> pd.DataFrame:
    """Rows of one scheme for the given victim accounts (vectorised over victims)."""
    sizes = {"account_takeover": (1, 3), "card_testing": (5, 12), "mule": (4, 8), "merchant_collusion": (2, 5)}
    sizes["new_scheme"] = (4, 7)
    lo, hi = sizes[scheme]
    counts = rng.integers(lo, hi + 1, len(victims))
    account = np.repeat(victims, counts)
    n = len(account)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(n) - first  # index of the row within its burst
    start_day = np.repeat(rng.integers(days // 3, days, len(victims)), counts)
    typical = info["typical"][account]
    night = scheme in ("account_takeover", "mule")
    victim_city = info["home"][victims]
    if scheme == "account_takeover":  # the attacker is far away; night there
        victim_city = (victim_city + rng.integers(2, len(CITIES) - 1, len(victims))) % len(CITIES)
    local_lng = CITIES[victim_city, 1].astype(float)
    base = start_day * 86400 + np.repeat(_local_day_seconds(rng, len(victims), local_lng, night=night), counts)
    city = np.repeat(victim_city, counts)
    device = account * 3
    merchant = np.repeat(rng.integers(2_000_000, 3_000_000, len(victims)), counts)
    channel = np.full(n, "online", dtype=object)
    if scheme == "account_takeover":
        seconds = base + k * rng.integers(60, 900, n)
        amount = typical * rng.uniform(6, 25, n)
        device = account * 3 + 2
        channel[:] = "transfer"
    elif scheme == "card_testing":
        seconds = base + k * rng.integers(10, 120, n)
        amount = rng.uniform(0.5, 3.0, n)
        merchant = rng.integers(3_000_000, 4_000_000, n)
    elif scheme == "mule":
        seconds = base + k * rng.integers(120, 600, n)
        amount = typical * rng.uniform(3, 8, n)
        channel[:] = "transfer"
    elif scheme == "merchant_collusion":
        seconds = base + k * rng.integers(3600, 6 * 3600, n)
        amount = np.round(typical * rng.uniform(2, 5, n), -1) + 0.0
        merchant = COLLUDING_MERCHANTS[rng.integers(0, len(COLLUDING_MERCHANTS), n)]
    else:  # new_scheme: fixed short cadence, mid-size amounts, one new merchant
        seconds = base + k * 1800
        amount = typical * rng.uniform(1.5, 2.5, n)
    texts = SCHEME_DESCRIPTIONS[scheme]
    description = np.array(texts, dtype=object)[rng.choice(len(texts), n, p=[0.45, 0.35, 0.20])]
    return _frame(
        account=account,
        seconds=seconds,
        amount=amount,
        merchant=merchant,
        channel=channel,
        city=city,
        jitter=rng.normal(0, 0.05, (n, 2)),
        device=device,
        description=description,
        scheme=np.full(n, scheme, dtype=object),
    )


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values(["timestamp", "account_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "transaction_id", np.char.add("T", np.arange(len(frame)).astype(str)))
    frame["is_fraud"] = (frame["scheme"] != "").astype(int)
    frame["scheme"] = frame["scheme"].replace("", "none")
    return frame


def generate(n_accounts: int = 1000, *, seed: int = 0, days: int = 60, fraud_rate: float = 0.04) -> pd.DataFrame:
    """Transactions of `n_accounts` accounts over `days` days, sorted by time.

    Args:
        n_accounts: number of accounts.
        seed: random seed; the same seed gives the same frame.
        days: length of the history.
        fraud_rate: share of accounts hit by one of the four schemes.

    Returns:
        One row per transaction with the canonical columns plus `scheme` and `is_fraud` (0/1).
    """
    rng = np.random.default_rng(seed)
    legit, info = _legit(rng, n_accounts, days)
    n_victims = max(len(SCHEMES), int(round(n_accounts * fraud_rate)))
    victims = rng.choice(n_accounts, size=min(n_victims, n_accounts), replace=False)
    parts = [legit]
    for i, scheme in enumerate(SCHEMES):
        parts.append(_scheme_rows(rng, scheme, victims[i :: len(SCHEMES)], info, days))
    return _finish(pd.concat(parts, ignore_index=True))


def generate_new_scheme(n_accounts: int = 200, *, seed: int = 1, days: int = 60, rate: float = 0.1) -> pd.DataFrame:
    """Like `generate` but the only fraud is `new_scheme` (subscription draining), for adaptation tests."""
    rng = np.random.default_rng(seed)
    legit, info = _legit(rng, n_accounts, days)
    victims = rng.choice(n_accounts, size=max(1, int(round(n_accounts * rate))), replace=False)
    return _finish(pd.concat([legit, _scheme_rows(rng, "new_scheme", victims, info, days)], ignore_index=True))
