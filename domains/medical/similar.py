"""Prior reports of the same hospital in core.retrieval: index them (PHI-masked) and find the most similar ones.

Collection `medical_reports`, one tenant per hospital (hospitals never see each other's reports); each object's
text is the masked findings, its metadata the report id and the masked impression. Search is hybrid (MiniLM
vector + BM25 keywords) through the VectorStore protocol, so LanceDB and Weaviate behave the same.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.errors import NotFoundError
from domains.medical.ingest import Report
from domains.medical.phi import mask_phi
from domains.medical.prompts import Prior

COLLECTION = "medical_reports"
FIELDS = {"report_id": "str", "impression": "str"}


def tenant_for(hospital: str) -> str:
    """The vector-store tenant of a hospital (its name, or `default`)."""
    return hospital or "default"


def index_reports(store: Any, embedder: Any, reports: list[Report], *, hospital: str) -> int:
    """Upsert the trainable reports of one hospital (masked) into COLLECTION; returns how many were written."""
    from core.retrieval.schema import CollectionSpec, StoredObject

    usable = [r for r in reports if r.trainable]
    spec = CollectionSpec(COLLECTION, dim=embedder.dim, fields=FIELDS)  # type: ignore[arg-type]
    store.create_collection(spec)
    if not usable:
        return 0
    texts = [mask_phi(r.findings) for r in usable]
    vectors = embedder.encode(texts)  # (n, dim)
    objects = [
        StoredObject(
            id=hashlib.sha256(f"{hospital}:{r.report_id}".encode()).hexdigest()[:32],
            text=text,
            vector=vectors[i],
            metadata={"report_id": r.report_id, "impression": mask_phi(r.impression)},
        )
        for i, (r, text) in enumerate(zip(usable, texts, strict=True))
    ]
    written = store.upsert(COLLECTION, objects, tenant=tenant_for(hospital))
    store.optimize(COLLECTION, tenant=tenant_for(hospital))
    return written


class PriorReports:
    """The k most similar indexed prior reports of a hospital for a study's findings.

    Args:
        store: an open VectorStore; embedder: the embedder the index was built with; hospital: whose reports.
    """

    def __init__(self, store: Any, embedder: Any, *, hospital: str) -> None:
        self.store, self.embedder, self.tenant = store, embedder, tenant_for(hospital)

    @staticmethod
    def available(store: Any, hospital: str) -> bool:
        """True when the hospital has indexed reports."""
        try:
            store.get_collection(COLLECTION)
        except NotFoundError:
            return False
        return store.count(COLLECTION, tenant=tenant_for(hospital)) > 0

    def similar(self, report: Report, k: int) -> list[Prior]:
        """Up to `k` priors, most similar first, never the report itself."""
        if k <= 0:
            return []
        text = mask_phi(report.findings)
        vector = self.embedder.encode([text])[0]
        hits = self.store.hybrid_search(COLLECTION, text, vector, tenant=self.tenant, limit=k + 1)
        priors = [
            Prior(str(h.metadata["report_id"]), h.text, str(h.metadata["impression"]))
            for h in hits
            if str(h.metadata["report_id"]) != report.report_id
        ]
        return priors[:k]
