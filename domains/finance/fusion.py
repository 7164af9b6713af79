"""Fusion of the numeric probability with the LLM's score, bounded to the adjudicated band.

The LLM score s is its expected level / 5 (llm.expected_level; the parsed level / 5 when no distribution is
available). The LLM may move a score only inside the band [low, high] it was asked to adjudicate: fused =
clip(p + weight * (s - p), low, high). Outside the band, or without a parsed answer, fused = p. So a weak or wrong
LLM can reorder transactions only within the uncertain band, never push a confident numeric score across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    """The uncertain band of numeric probabilities the LLM adjudicates, and how far its level may pull."""

    low: float
    high: float
    weight: float = 0.5

    @classmethod
    def around(cls, threshold: float, *, width: float = 4.0, weight: float = 0.5) -> Band:
        """Band from threshold / width to 1 - (1 - threshold) / width (multiplicative on each side)."""
        return cls(threshold / width, 1.0 - (1.0 - threshold) / width, weight)


def fuse(prob: np.ndarray, llm_score: np.ndarray, band: Band) -> np.ndarray:
    """Fused probability per row.

    Args:
        prob: numeric probabilities, shape (n,).
        llm_score: LLM scores in [0, 1], NaN where not adjudicated or unparsed, shape (n,).
        band: the adjudicated band.

    Returns:
        Fused probabilities, shape (n,).
    """
    prob = np.asarray(prob, dtype=float)
    score = np.asarray(llm_score, dtype=float)
    inside = (prob >= band.low) & (prob <= band.high) & ~np.isnan(score)
    moved = np.clip(prob + band.weight * (np.nan_to_num(score) - prob), band.low, band.high)
    return np.where(inside, moved, prob)
