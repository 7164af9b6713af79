"""Causal per-account transaction features and the reason names (with thresholds) they map to.

Causal: a transaction's features use only the account's earlier transactions (earlier in time; for equal times,
earlier in input order), never later ones, so scoring a stream gives the same features as scoring its history.

Everything is vectorised over a frame sorted by (account, time): "the k-th previous transaction of the same
account" is the row k positions up when its account matches. Robust statistics use the last `WINDOW` past values:
median and MAD (scaled by 1.4826, so z is comparable to a normal z-score). Windows in time (1h, 24h) use
`searchsorted` on an (account, seconds) key. pandas has no grouped rolling MAD, so these few lines are ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WINDOW = 20  # past values used for an account's robust baseline
MIN_HISTORY = 3  # fewer past values than this: no baseline, z-scores are 0
SMALL_AMOUNT = 5.0  # card-testing charges are below this
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Reason:
    """A human-readable reason: fires when `feature` `op` `threshold` (op is '>=' or '<=')."""

    name: str
    feature: str
    op: str
    threshold: float
    en: str
    zh: str


REASONS: tuple[Reason, ...] = (
    Reason(
        "abnormal_interval", "interval_abs_z", ">=", 3.5, "time since previous transaction is abnormal", "交易间隔异常"
    ),
    Reason("large_amount", "amount_z", ">=", 3.5, "amount far above the account's history", "大额转账"),
    Reason("new_location", "dist_home_km", ">=", 300.0, "far from the account's usual location", "异地登录"),
    Reason("impossible_travel", "speed_kmh", ">=", 900.0, "implied travel speed is impossible", "不可能的移动速度"),
    Reason("night_time", "night", ">=", 1.0, "local night-time (00:00-05:59)", "夜间操作"),
    Reason("high_velocity", "count_1h", ">=", 4.0, "many transactions in the last hour", "交易频率过高"),
    Reason("new_merchant", "new_merchant", ">=", 1.0, "first transaction with this merchant", "新商户"),
    Reason("card_testing", "small_count_1h", ">=", 3.0, "burst of tiny amounts (card testing)", "小额试探交易"),
)
REASON_NAMES: tuple[str, ...] = tuple(r.name for r in REASONS)
REASON_BY_ZH = {r.zh: r.name for r in REASONS}
FEATURES: tuple[str, ...] = (
    "history_n",
    "interval_s",
    "interval_z",
    "interval_abs_z",
    "amount",
    "log_amount",
    "amount_z",
    "amount_ratio",
    "dist_prev_km",
    "dist_home_km",
    "speed_kmh",
    "local_hour",
    "night",
    "count_1h",
    "count_24h",
    "amount_24h",
    "small_count_1h",
    "new_merchant",
    "new_device",
    "new_country",
)


def _lagged(values: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """values[i - k] where row i - k belongs to the same account, else NaN. Shape (n,)."""
    out = np.full(len(values), np.nan)
    if k < len(values):
        same = group[k:] == group[:-k]
        out[k:] = np.where(same, values[:-k], np.nan)
    return out


def _past_matrix(values: np.ndarray, group: np.ndarray, window: int) -> np.ndarray:
    """The last `window` past values of each row's account, NaN-padded. Shape (n, window)."""
    return np.stack([_lagged(values, group, k) for k in range(1, window + 1)], axis=1)


def _robust_z(values: np.ndarray, past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z = (x - median(past)) / (1.4826 * MAD(past)); 0 with fewer than MIN_HISTORY past values.

    Returns (z, median), each shape (n,).
    """
    count = np.sum(~np.isnan(past), axis=1)
    enough = count >= MIN_HISTORY
    med = np.full(len(values), np.nan)
    mad = np.full(len(values), np.nan)
    if enough.any():
        sub = past[enough]
        med[enough] = np.nanmedian(sub, axis=1)
        mad[enough] = np.nanmedian(np.abs(sub - med[enough, None]), axis=1)
    scale = 1.4826 * np.nan_to_num(mad) + 1e-3
    z = np.where(enough, (values - med) / scale, 0.0)
    return np.nan_to_num(z, nan=0.0), med


def _haversine_km(lat1: np.ndarray, lng1: np.ndarray, lat2: np.ndarray, lng2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlng = p2 - p1, np.radians(lng2 - lng1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _first_seen(frame: pd.DataFrame, column: str, position: np.ndarray) -> np.ndarray:
    """1 where the account uses `column`'s value for the first time (not on its first transaction), else 0."""
    if column not in frame.columns:
        return np.zeros(len(frame))
    seen = frame.groupby(["account_id", column], sort=False, dropna=False).cumcount().to_numpy()
    return ((seen == 0) & (position > 0)).astype(float)


def _window_counts(key: np.ndarray, span: int, weights: np.ndarray) -> np.ndarray:
    """Sum of `weights` over earlier rows of the same account within the last `span` seconds. Shape (n,)."""
    left = np.searchsorted(key, key - span, side="right")
    csum = np.concatenate([[0.0], np.cumsum(weights)])
    idx = np.arange(len(key))
    return csum[idx] - csum[left]


def compute_features(frame: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Features for every transaction, returned in the input's row order.

    Args:
        frame: canonical transactions (account_id, timestamp, amount required; lat/lng, merchant_id, device_id,
            country used when present). Timestamps are UTC; local time uses the offset round(lng / 15) hours
            when lng is present, else the timestamp is taken as local.
        extra: further numeric columns copied through as features.

    Returns:
        A frame with the columns of FEATURES (plus `extra`), index aligned with `frame`.
    """
    n = len(frame)
    order = np.lexsort((np.arange(n), frame["timestamp"].to_numpy(), frame["account_id"].astype(str).to_numpy()))
    f = frame.iloc[order].reset_index(drop=True)
    group = pd.factorize(f["account_id"].astype(str))[0].astype(np.int64)
    seconds = f["timestamp"].to_numpy().astype("datetime64[s]").astype(np.int64)
    position = f.groupby(group, sort=False).cumcount().to_numpy()
    out: dict[str, np.ndarray] = {"history_n": position.astype(float)}

    interval = seconds - _lagged(seconds.astype(float), group, 1)
    out["interval_s"] = interval
    log_gap = np.log1p(np.maximum(interval, 0.0))
    z, _ = _robust_z(log_gap, _past_matrix(log_gap, group, WINDOW))
    out["interval_z"] = np.where(np.isnan(interval), 0.0, z)
    out["interval_abs_z"] = np.abs(out["interval_z"])

    amount = f["amount"].to_numpy(dtype=float)
    log_amount = np.log1p(np.maximum(amount, 0.0))
    out["amount"] = amount
    out["log_amount"] = log_amount
    z, med = _robust_z(log_amount, _past_matrix(log_amount, group, WINDOW))
    out["amount_z"] = z
    out["amount_ratio"] = np.where(np.isnan(med), 1.0, (amount + 1.0) / (np.expm1(np.nan_to_num(med)) + 1.0))

    if {"lat", "lng"} <= set(f.columns):
        lat, lng = f["lat"].to_numpy(dtype=float), f["lng"].to_numpy(dtype=float)
        dist_prev = _haversine_km(_lagged(lat, group, 1), _lagged(lng, group, 1), lat, lng)
        out["dist_prev_km"] = np.nan_to_num(dist_prev)
        hours = np.maximum(np.nan_to_num(interval, nan=np.inf), 60.0) / 3600.0
        out["speed_kmh"] = np.nan_to_num(dist_prev) / hours
        past_lat, past_lng = _past_matrix(lat, group, WINDOW), _past_matrix(lng, group, WINDOW)
        enough = np.sum(~np.isnan(past_lat), axis=1) >= MIN_HISTORY
        home_lat = np.full(n, np.nan)
        home_lng = np.full(n, np.nan)
        home_lat[enough] = np.nanmedian(past_lat[enough], axis=1)
        home_lng[enough] = np.nanmedian(past_lng[enough], axis=1)
        out["dist_home_km"] = np.nan_to_num(_haversine_km(home_lat, home_lng, lat, lng))
        offset_s = np.round(np.nan_to_num(lng) / 15.0) * 3600.0
    else:
        out["dist_prev_km"] = out["dist_home_km"] = out["speed_kmh"] = np.zeros(n)
        offset_s = np.zeros(n)
    local_hour = ((seconds + offset_s) % 86400) // 3600
    out["local_hour"] = local_hour.astype(float)
    out["night"] = (local_hour < 6).astype(float)

    key = group * np.int64(10**11) + seconds  # sorted: by account, then time
    ones = np.ones(n)
    out["count_1h"] = _window_counts(key, 3600, ones)
    out["count_24h"] = _window_counts(key, 86400, ones)
    out["amount_24h"] = _window_counts(key, 86400, amount)
    small = (amount < SMALL_AMOUNT).astype(float)
    out["small_count_1h"] = np.where(small > 0, _window_counts(key, 3600, small) + 1.0, 0.0)

    out["new_merchant"] = _first_seen(f, "merchant_id", position)
    out["new_device"] = _first_seen(f, "device_id", position)
    out["new_country"] = _first_seen(f, "country", position)
    features = pd.DataFrame(out)
    _mark_unknown(features, f)
    for name in extra or []:
        features[name] = pd.to_numeric(f[name], errors="coerce").to_numpy(dtype=float)
    restored = np.empty(n, dtype=np.int64)
    restored[order] = np.arange(n)
    features = features.iloc[restored].reset_index(drop=True)
    features.index = frame.index
    return features


# Features that mean nothing when ingest flagged the field they read (ingest.FLAG_COLUMN): NaN there, "unknown",
# which the gradient-boosted screen handles natively and no reason rule fires on.
UNKNOWN_WHEN = {
    "unknown_country": ("new_country",),
    "missing_merchant": ("new_merchant",),
    "invalid_lat": ("dist_prev_km", "dist_home_km", "speed_kmh"),
    "invalid_lng": ("dist_prev_km", "dist_home_km", "speed_kmh", "local_hour", "night"),
}


def _mark_unknown(features: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Set the features of UNKNOWN_WHEN to NaN on rows whose `odd_fields` name the flag (in place, same order)."""
    if "odd_fields" not in frame.columns:
        return
    flags = frame["odd_fields"].astype(str).to_numpy()
    for flag, names in UNKNOWN_WHEN.items():
        hit = np.char.find(flags.astype(str), flag) >= 0
        if hit.any():
            features.loc[hit, list(names)] = np.nan


def reasons_for(features: pd.DataFrame) -> list[list[str]]:
    """The reason names that fire for each row, in REASONS order."""
    fired = []
    for reason in REASONS:
        col = features[reason.feature].to_numpy(dtype=float)
        fired.append(col >= reason.threshold if reason.op == ">=" else col <= reason.threshold)
    matrix = np.stack(fired, axis=1)  # (n, n_reasons)
    return [[REASON_NAMES[j] for j in np.flatnonzero(row)] for row in matrix]


def with_features(
    frame: pd.DataFrame, features: pd.DataFrame, rows: np.ndarray | list[int] | None = None
) -> pd.DataFrame:
    """Canonical fields and features of the same transactions side by side, as prompts and case stores read them.

    Where a name is in both (e.g. `amount`), the feature column is kept. `rows` (positions) selects transactions;
    the result has a fresh 0..n-1 index.
    """
    frame, features = frame.reset_index(drop=True), features.reset_index(drop=True)
    if rows is not None:
        frame, features = frame.iloc[rows].reset_index(drop=True), features.iloc[rows].reset_index(drop=True)
    merged = pd.concat([frame, features], axis=1)
    return merged.loc[:, ~merged.columns.duplicated(keep="last")]
