"""The embedded store's approximate index: built by `optimize` past the threshold, searched with high recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.retrieval.lance_store import LanceStore
from core.retrieval.schema import CollectionSpec, Filter, StoredObject


def test_optimize_builds_the_vector_index_and_recall_stays_high(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = LanceStore(tmp_path, index_min_rows=500)
    store.create_collection(CollectionSpec("docs", 16, {"group": "int"}))
    objects = [StoredObject(f"d{i}", f"document number {i}", vectors[i], {"group": i % 3}) for i in range(600)]
    store.upsert("docs", objects, tenant="t")
    store.optimize("docs", tenant="t")
    table = store._table("docs", "t")
    assert {tuple(idx.columns) for idx in table.list_indices()} >= {("vector",), ("text",), ("id",)}
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean(
        [
            len({int(h.id[1:]) for h in store.vector_search("docs", q, tenant="t", limit=10)} & set(exact[i])) / 10
            for i, q in enumerate(queries)
        ]
    )
    assert recall >= 0.9
    # rows written after the index was built are found before the next optimize
    store.upsert("docs", [StoredObject("new", "fresh text", -vectors[0], {"group": 1})], tenant="t")
    assert store.vector_search("docs", -vectors[0], tenant="t", limit=1)[0].id == "new"
    hits = store.vector_search("docs", vectors[5], tenant="t", limit=5, filters=[Filter("group", "eq", 2)])
    assert hits[0].id == "d5" and all(h.metadata["group"] == 2 for h in hits)
