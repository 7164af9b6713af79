"""Risk levels that mean a fraud rate: six levels cut on the (fused) score of a held-out slice of the training period,
each with the fraud-rate band it promises.

Fixed probability edges put most rows of a real export on one or two levels (75% of test rows at level 2 with 5.4%
fraud, 14% at level 3 with 7.5%: to an analyst the same). Here the levels are fitted instead:

- Population shares, scaled to the fraud prevalence pi of the slice: levels >= 5 hold about pi / 2 of the rows,
  >= 4 about pi, >= 3 about 2 pi, >= 2 about 4 pi and >= 1 about 8 pi (each capped, see SHARE_CAPS), so level 0 is
  the bulk that is safe to ignore and level 5 a short list to act on now. The cut points are the score quantiles
  at those shares.
- The promised band of each level is the range of the isotonic calibration (scikit-learn IsotonicRegression of
  the label on the score) over the level's score interval: the calibrated fraud probability of the level's lowest
  and highest slice row. Isotonic regression is monotone, so the bands rise with the level and never overlap.
- The observed fraud rate and count per level on the slice are kept beside the bands (the backtest reports the
  same figures on the test rows).

The calibration's `version` is a short hash of its cut points and bands, stored with every assessment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression

from core.errors import ValidationError

LEVELS = 6
PREVALENCE_MULTIPLES = (8.0, 4.0, 2.0, 1.0, 0.5)  # share of rows at level >= k (k = 1..5) as a multiple of pi
SHARE_CAPS = (0.6, 0.4, 0.25, 0.15, 0.08)  # ... at most these shares
MIN_SHARE_GAP = 0.5  # each share >= k+1 is at most this fraction of the share >= k, so every level gets rows


@dataclass(frozen=True)
class LevelBand:
    """One level on the calibration slice: rows, observed fraud rate and the promised band [low, high]."""

    level: int
    n: int
    fraud_rate: float | None
    low: float
    high: float

    def band_text(self) -> str:
        """E.g. "0.5%-3.1%"."""
        return f"{100 * self.low:.1f}%-{100 * self.high:.1f}%"


@dataclass
class LevelCalibration:
    """Cut points on a score (five, rising) and the band each level promises.

    Attributes:
        cuts: scores where levels 1..5 start, shape (5,).
        bands: one LevelBand per level 0..5.
        n_rows: rows of the calibration slice; positives: its fraud rows.
        source: what the slice was (e.g. "validation slice 2026-02-03..2026-02-20, fused score").
    """

    cuts: list[float]
    bands: list[LevelBand]
    n_rows: int
    positives: int
    source: str = ""
    iso_x: list[float] = field(default_factory=list)  # the isotonic step function (thresholds, values)
    iso_y: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, score: np.ndarray, y: np.ndarray, *, source: str = "") -> LevelCalibration:
        """Fit cut points and bands on a held-out slice: `score` and 0/1 labels `y`, shape (n,).

        Raises:
            ValidationError: the slice has no fraud row or no legitimate row.
        """
        score = np.asarray(score, dtype=float)
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValidationError(
                f"level calibration needs fraud and legitimate rows in its slice ({len(y)} rows, {int(y.sum())} "
                "fraud): give a longer labelled history"
            )
        prevalence = float(y.mean())
        shares = []
        for multiple, cap in zip(PREVALENCE_MULTIPLES, SHARE_CAPS, strict=True):
            share = min(cap, multiple * prevalence)
            if shares:
                share = min(share, MIN_SHARE_GAP * shares[-1])
            shares.append(max(share, 1.0 / len(y)))
        cuts = _cuts(score, shares)
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, y)
        calibrated = iso.predict(score)
        level = np.searchsorted(cuts, score, side="right")
        bands = []
        for k in range(LEVELS):
            mask = level == k
            low = float(calibrated[mask].min()) if mask.any() else float(iso.predict([cuts[k - 1] if k else 0.0])[0])
            high = float(calibrated[mask].max()) if mask.any() else low
            rate = float(y[mask].mean()) if mask.any() else None
            bands.append(LevelBand(k, int(mask.sum()), rate, low, high))
        return cls(
            [float(c) for c in cuts],
            bands,
            len(y),
            int(y.sum()),
            source,
            [float(v) for v in iso.X_thresholds_],
            [float(v) for v in iso.y_thresholds_],
        )

    def level(self, score: np.ndarray) -> np.ndarray:
        """Risk level 0-5 per score, shape (n,) -> (n,) int."""
        return np.searchsorted(np.asarray(self.cuts), np.asarray(score, dtype=float), side="right").astype(int)

    def probability(self, score: np.ndarray) -> np.ndarray:
        """The isotonic calibrated fraud probability per score, shape (n,)."""
        return np.interp(np.asarray(score, dtype=float), self.iso_x, self.iso_y)

    @property
    def version(self) -> str:
        """A short content hash: the same cuts and bands give the same version."""
        payload = json.dumps([self.cuts, [(b.low, b.high) for b in self.bands]], sort_keys=True).encode()
        return "cal-" + hashlib.sha256(payload).hexdigest()[:12]

    def table(self) -> list[dict[str, object]]:
        """Per level: level, n, fraud_rate and band [low, high] on the calibration slice."""
        return [{"level": b.level, "n": b.n, "fraud_rate": b.fraud_rate, "band": [b.low, b.high]} for b in self.bands]


def _cuts(score: np.ndarray, shares: list[float]) -> np.ndarray:
    """Five rising cut points: for each share, the lowest distinct score with at most that share of rows at or
    above it, moved up to the next distinct score when it would not rise (many rows can tie on one score, and a
    level can only start between distinct scores)."""
    values = np.unique(score)  # ascending
    above = len(score) - np.searchsorted(np.sort(score), values, side="left")  # rows >= each value
    cuts: list[float] = []
    for share in shares:
        ok = np.flatnonzero(above <= share * len(score))
        pos = int(ok[0]) if len(ok) else len(values) - 1
        if cuts and values[pos] <= cuts[-1]:
            pos = min(int(np.searchsorted(values, cuts[-1], side="right")), len(values) - 1)
        cuts.append(float(values[pos]) if values[pos] > (cuts[-1] if cuts else -np.inf) else np.nextafter(cuts[-1], 2))
    return np.array(cuts)


def level_table(levels: np.ndarray, y: np.ndarray, calibration: LevelCalibration | None) -> list[dict[str, object]]:
    """Per level on scored rows (e.g. the test part): level, n, observed fraud_rate and the promised band."""
    levels, y = np.asarray(levels, dtype=int), np.asarray(y, dtype=int)
    rows = []
    for k in range(LEVELS):
        mask = levels == k
        band = [calibration.bands[k].low, calibration.bands[k].high] if calibration is not None else None
        rows.append(
            {
                "level": k,
                "n": int(mask.sum()),
                "fraud_rate": float(y[mask].mean()) if mask.any() else None,
                "band": band,
            }
        )
    return rows
