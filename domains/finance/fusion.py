"""Fusion of the numeric probability with the LLM's level, bounded to the adjudicated band.

The LLM may move a score only inside the band [low, high] it was asked to adjudicate: fused = clip(p + weight *
(level / 5 - p), low, high). Outside the band, or without a parsed LLM level, fused = p. So a weak or wrong LLM
can reorder transactions only within the uncertain band, never push a confident numeric score across it.
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


def fuse(prob: np.ndarray, llm_level: np.ndarray, band: Band) -> np.ndarray:
    """Fused probability per row.

    Args:
        prob: numeric probabilities, shape (n,).
        llm_level: LLM levels 0-5, NaN where not adjudicated or unparsed, shape (n,).
        band: the adjudicated band.

    Returns:
        Fused probabilities, shape (n,).
    """
    prob = np.asarray(prob, dtype=float)
    level = np.asarray(llm_level, dtype=float)
    inside = (prob >= band.low) & (prob <= band.high) & ~np.isnan(level)
    moved = np.clip(prob + band.weight * (np.nan_to_num(level) / 5.0 - prob), band.low, band.high)
    return np.where(inside, moved, prob)
