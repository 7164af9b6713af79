"""Fusion of the numeric probability with the LLM's score: weighted log-odds pooling around each model's own
decision point.

For a row the LLM adjudicated, with numeric probability p (operating threshold t, chosen on training data) and
LLM score s (expected level / 5, decision point u: llm.LLM_THRESHOLD = 0.5 unless the model was calibrated):

    margin = (1 - w) * (logit(p) - logit(t)) + w * (logit(s') - logit(u)),   s' = clip(s, 0.02, 0.98)
    fused  = sigmoid(logit(t) + margin)

so fused >= t exactly when the weighted margins lean to fraud, and t stays the operating point of the fused score.
Rows the LLM did not adjudicate, or whose answer failed to parse, keep fused = p. The clip bounds the LLM's pull to
w * 3.9 in log-odds: a wrong LLM cannot overturn a confident numeric score (p = 0.999 with t = 0.9 stays flagged
whatever the LLM says at w = 0.5), and it matters where the numeric model is unsure — the band the cascade sends it.
w = 0 is the numeric model alone; w = 1 lets the LLM's verdict replace the numeric score wherever it adjudicated.

The weight is learned, not assumed (`fit_fusion`): on a time-ordered validation slice of the training period (never
the test rows) the LLM adjudicates a budgeted selection, and w is the grid value with the best average precision
of the fused score over the whole slice. When the best w gains less than MIN_AP_GAIN over the numeric screen alone
(no description column, an untuned model: nothing the features do not already say), w = 0 and `llm_used` is False:
scoring then skips LLM calls unless the user asks for them. DEFAULT_WEIGHT = 0.5 is used only when an LLM is forced
on a model whose fusion was never measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score

from domains.finance.llm import LLM_THRESHOLD

LLM_CLIP = 0.02
_EPS = 1e-6
DEFAULT_WEIGHT = 0.5
WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
MIN_AP_GAIN = 0.005  # average precision points (0-1) the LLM must add on the validation slice to be called
MIN_LLM_ROWS = 10  # adjudicated validation rows (with both labels among them) needed to measure anything


@dataclass(frozen=True)
class FusionFit:
    """The learned fusion, saved with the numeric model.

    Attributes:
        weight: the LLM's weight w (0: numeric alone).
        llm_used: whether scoring calls the LLM by default.
        reason: one line saying why (shown by `score` and the backtest).
        llm_rate: share of the slice's rows the LLM adjudicated (scoring's default budget is this share of a batch).
        val_rows / llm_rows: rows of the slice / rows the LLM adjudicated there with a parsed answer.
        ap_numeric / ap_fused: average precision on the slice without and with the LLM at `weight`.
        llm_name: the LLM measured (RiskLLM.name), "" without one.
    """

    weight: float
    llm_used: bool
    reason: str
    llm_rate: float = 0.0
    val_rows: int = 0
    llm_rows: int = 0
    ap_numeric: float | None = None
    ap_fused: float | None = None
    llm_name: str = ""

    def as_dict(self) -> dict[str, object]:
        """The metrics.json "fusion" block."""
        return {"weight": self.weight, "llm_used": self.llm_used, "reason": self.reason}


def no_llm(reason: str, *, val_rows: int = 0) -> FusionFit:
    """The fusion when nothing was measured: numeric alone."""
    return FusionFit(0.0, False, reason, val_rows=val_rows)


def fit_fusion(
    y: np.ndarray,
    prob: np.ndarray,
    llm_score: np.ndarray,
    threshold: float,
    *,
    llm_threshold: float = LLM_THRESHOLD,
    llm_name: str = "",
    weights: tuple[float, ...] = WEIGHTS,
) -> FusionFit:
    """Learn w on a validation slice (see the module docstring).

    Args:
        y: 0/1 labels of the slice, shape (n,).
        prob: numeric probabilities, shape (n,).
        llm_score: LLM scores, NaN where not adjudicated or unparsed, shape (n,).
        threshold: the numeric operating threshold; llm_threshold: the LLM's decision point.
    """
    y = np.asarray(y, dtype=int)
    scored = ~np.isnan(np.asarray(llm_score, dtype=float))
    n, n_llm = len(y), int(scored.sum())
    rate = n_llm / n if n else 0.0
    if len(np.unique(y)) < 2:
        return no_llm(f"fusion not measured: the validation slice ({n} rows) has one label only", val_rows=n)
    base = float(average_precision_score(y, prob))
    if n_llm < MIN_LLM_ROWS or len(np.unique(y[scored])) < 2:
        return FusionFit(
            0.0,
            False,
            f"LLM not used: only {n_llm} validation rows got a parsed LLM answer ({int(y[scored].sum())} fraud); "
            f"need {MIN_LLM_ROWS} with both labels to measure a gain",
            rate,
            n,
            n_llm,
            base,
            base,
            llm_name,
        )
    aps = [
        float(average_precision_score(y, fuse(prob, llm_score, threshold, w, llm_threshold=llm_threshold)))
        for w in weights
    ]
    best = int(np.argmax(aps))
    gain = aps[best] - base
    if gain < MIN_AP_GAIN:
        return FusionFit(
            0.0,
            False,
            f"LLM skipped: no gain on the validation slice (AP {base:.4f} numeric, best {aps[best]:.4f} at weight "
            f"{weights[best]:.1f}, over {n_llm} adjudicated of {n} rows)",
            rate,
            n,
            n_llm,
            base,
            base,
            llm_name,
        )
    return FusionFit(
        float(weights[best]),
        True,
        f"LLM used at weight {weights[best]:.1f}: AP {base:.4f} -> {aps[best]:.4f} on the validation slice "
        f"({n_llm} adjudicated of {n} rows)",
        rate,
        n,
        n_llm,
        base,
        aps[best],
        llm_name,
    )


@dataclass(frozen=True)
class Band:
    """The uncertain band of numeric probabilities the cascade sends to the LLM first."""

    low: float
    high: float

    @classmethod
    def around(cls, threshold: float, *, width: float = 4.0) -> Band:
        """Band from threshold / width to 1 - (1 - threshold) / width (multiplicative on each side)."""
        return cls(threshold / width, 1.0 - (1.0 - threshold) / width)


def _logit(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=float), _EPS, 1 - _EPS)
    return np.log(x / (1 - x))


def fuse(
    prob: np.ndarray,
    llm_score: np.ndarray,
    threshold: float,
    weight: float = DEFAULT_WEIGHT,
    *,
    llm_threshold: float = LLM_THRESHOLD,
) -> np.ndarray:
    """Fused probability per row (see the module docstring).

    Args:
        prob: numeric probabilities, shape (n,).
        llm_score: LLM scores in [0, 1], NaN where not adjudicated or unparsed, shape (n,).
        threshold: the numeric model's operating threshold.
        weight: the LLM's weight w in [0, 1].
        llm_threshold: the LLM's decision point u on its score (RiskLLM.threshold).

    Returns:
        Fused probabilities, shape (n,).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must be in [0, 1], not {weight}")
    prob = np.asarray(prob, dtype=float)
    score = np.asarray(llm_score, dtype=float)
    adjudicated = ~np.isnan(score)
    llm_margin = _logit(np.clip(np.nan_to_num(score, nan=llm_threshold), LLM_CLIP, 1 - LLM_CLIP)) - _logit(
        llm_threshold
    )
    margin = (1 - weight) * (_logit(prob) - _logit(threshold)) + weight * llm_margin
    pooled = 1.0 / (1.0 + np.exp(-(_logit(threshold) + margin)))
    return np.where(adjudicated, pooled, prob)
