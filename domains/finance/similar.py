"""The retrieval seam for few-shot examples: `SimilarCases` and an in-memory nearest-neighbour implementation.

The core retrieval room (vector stores) plugs in at merge as another `SimilarCases`; the pipeline sees the protocol.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from domains.finance.features import FEATURES, reasons_for
from domains.finance.prompts import Example, summarise
from domains.finance.targets import target_for


class SimilarCases(Protocol):
    """Returns labelled past cases similar to each query transaction."""

    def similar(self, features: pd.DataFrame, k: int) -> list[list[Example]]:
        """`k` examples per row of `features` (columns of FEATURES), nearest first."""
        ...


class InMemorySimilarCases:
    """k-nearest labelled transactions on standardised feature vectors (scikit-learn NearestNeighbors).

    Args:
        rows: labelled transactions: canonical fields plus feature columns.
        labels: 0/1 fraud label per row, shape (n,).
        balance: keep at most this many legitimate rows per fraud row so fraud cases are reachable.
        seed: sampling seed for the balancing.
    """

    def __init__(self, rows: pd.DataFrame, labels: np.ndarray, *, balance: int = 5, seed: int = 0) -> None:
        labels = np.asarray(labels, dtype=int)
        fraud = np.flatnonzero(labels == 1)
        legit = np.flatnonzero(labels == 0)
        keep_legit = min(len(legit), max(balance * len(fraud), 50))
        legit = np.random.default_rng(seed).choice(legit, size=keep_legit, replace=False) if keep_legit else legit
        keep = np.sort(np.concatenate([fraud, legit]))
        self.rows = rows.iloc[keep].reset_index(drop=True)
        self.labels = labels[keep]
        self.reasons = reasons_for(self.rows)
        self.scaler = StandardScaler().fit(self._matrix(self.rows))
        self.index = NearestNeighbors().fit(self.scaler.transform(self._matrix(self.rows)))

    @staticmethod
    def _matrix(frame: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num(frame[list(FEATURES)].to_numpy(dtype=float), nan=0.0, posinf=1e6)  # (n, n_features)

    def similar(self, features: pd.DataFrame, k: int) -> list[list[Example]]:
        """See SimilarCases.similar."""
        if k <= 0 or len(features) == 0 or len(self.rows) == 0:
            return [[] for _ in range(len(features))]
        k = min(k, len(self.rows))
        _, idx = self.index.kneighbors(self.scaler.transform(self._matrix(features)), n_neighbors=k)  # (n, k)
        out = []
        for row_idx in idx:
            examples = []
            for j in row_idx:
                level, reasons = target_for(int(self.labels[j]), self.reasons[j])
                summary = summarise(self.rows.iloc[j].to_dict(), self.reasons[j])
                examples.append(Example(summary, level, reasons))
            out.append(examples)
        return out
