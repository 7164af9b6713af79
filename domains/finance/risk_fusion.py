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
The default w = 0.5 weighs the two equally; it is fixed a priori, not tuned on test data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domains.finance.llm import LLM_THRESHOLD

LLM_CLIP = 0.02
_EPS = 1e-6


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
    weight: float = 0.5,
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
