"""The retrieval seam for few-shot examples: `SimilarCases` and an in-memory nearest-neighbour implementation.

core.retrieval's vector stores plug in as another `SimilarCases`; the pipeline sees only the protocol.
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


CASES_SPEC_FIELDS = {"label": "int", "level": "int", "reasons": "str", "transaction_id": "str"}


def case_vector(features: pd.DataFrame) -> np.ndarray:
    """Stateless embedding of feature rows for the vector store, shape (n, len(FEATURES)).

    sign(x) * log1p(|x|) per feature (missing -> 0): it needs no fitted scaler, so an index built today and a
    query run next month agree, and it keeps huge amounts or speeds from dominating the cosine similarity.
    """
    x = np.nan_to_num(features[list(FEATURES)].to_numpy(dtype=float), nan=0.0, posinf=1e6, neginf=-1e6)
    return np.sign(x) * np.log1p(np.abs(x))


def index_cases(
    store: object, rows: pd.DataFrame, labels: np.ndarray, *, collection: str, tenant: str = "default"
) -> int:
    """Upsert labelled cases (canonical fields + features) into `collection` of a core.retrieval VectorStore.

    Each object: id = transaction id, text = the feature summary the prompt shows, vector = case_vector, metadata
    = label, target level and reasons. Returns the number of cases written.
    """
    from core.retrieval.schema import CollectionSpec, StoredObject

    labels = np.asarray(labels, dtype=int)
    reasons = reasons_for(rows)
    vectors = case_vector(rows)
    spec = CollectionSpec(collection, dim=vectors.shape[1], fields=CASES_SPEC_FIELDS)  # type: ignore[arg-type]
    store.create_collection(spec)  # type: ignore[attr-defined]
    objects = []
    for i, rec in enumerate(rows.to_dict("records")):
        level, why = target_for(int(labels[i]), reasons[i])
        objects.append(
            StoredObject(
                id=str(rec["transaction_id"]),
                text=summarise(rec, reasons[i]),
                vector=vectors[i].tolist(),
                metadata={
                    "label": int(labels[i]),
                    "level": level,
                    "reasons": ",".join(why),
                    "transaction_id": str(rec["transaction_id"]),
                },
            )
        )
    return store.upsert(collection, objects, tenant=tenant)  # type: ignore[attr-defined]


class StoreSimilarCases:
    """SimilarCases from a core.retrieval VectorStore collection written by `index_cases` (LanceDB or Weaviate).

    Args:
        store: an open VectorStore.
        collection: the cases collection.
        tenant: the business unit whose cases are searched (tenants never see each other's cases).
    """

    def __init__(self, store: object, collection: str, *, tenant: str = "default") -> None:
        store.get_collection(collection)  # type: ignore[attr-defined]  # NotFoundError early, with the name
        self.store, self.collection, self.tenant = store, collection, tenant

    def similar(self, features: pd.DataFrame, k: int) -> list[list[Example]]:
        """See SimilarCases.similar."""
        if k <= 0 or len(features) == 0:
            return [[] for _ in range(len(features))]
        out = []
        for vector in case_vector(features):
            hits = self.store.vector_search(  # type: ignore[attr-defined]
                self.collection, vector.tolist(), tenant=self.tenant, limit=k
            )
            out.append(
                [
                    Example(h.text, int(h.metadata["level"]), [r for r in str(h.metadata["reasons"]).split(",") if r])
                    for h in hits
                ]
            )
        return out
