"""The VectorStore protocol both backends implement, and `open_store` that picks one from the settings.

Every data operation names a tenant (one per business unit or hospital). Backends keep tenants physically apart
(LanceDB: one table per tenant; Weaviate: native multi-tenancy shards), so a query never sees another tenant's
objects whatever filters a caller passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from core.retrieval.schema import CollectionSpec, Filter, Hit, StoredObject, Vector
from core.settings import Settings


@runtime_checkable
class VectorStore(Protocol):
    """Collections of (id, text, vector, metadata) objects with vector, BM25 and hybrid search per tenant."""

    backend: str

    def create_collection(self, spec: CollectionSpec) -> CollectionSpec:
        """Create `spec.name` (idempotent for the same spec); ConflictError when it exists with another schema."""
        ...

    def get_collection(self, name: str) -> CollectionSpec:
        """The schema of collection `name`; NotFoundError when it does not exist."""
        ...

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        ...

    def drop_collection(self, name: str) -> None:
        """Delete collection `name` with all tenants' objects; NotFoundError when it does not exist."""
        ...

    def tenants(self, collection: str) -> list[str]:
        """Tenants that hold objects (or once did) in `collection`, sorted."""
        ...

    def upsert(self, collection: str, objects: Sequence[StoredObject], *, tenant: str) -> int:
        """Insert or replace objects by id (idempotent); validates all before writing any. Returns len(objects)."""
        ...

    def delete(self, collection: str, ids: Sequence[str], *, tenant: str) -> int:
        """Delete objects by id; returns how many existed."""
        ...

    def fetch(self, collection: str, ids: Sequence[str], *, tenant: str) -> dict[str, Hit]:
        """Objects by id (score 0.0); ids that do not exist are absent from the answer."""
        ...

    def count(self, collection: str, *, tenant: str | None = None) -> int:
        """Objects of `tenant`, or of all tenants together when `tenant` is None (an operator's total)."""
        ...

    def vector_search(
        self, collection: str, vector: Vector, *, tenant: str, limit: int = 10, filters: Sequence[Filter] = ()
    ) -> list[Hit]:
        """Nearest objects by cosine similarity to `vector` (shape (dim,)), best first."""
        ...

    def bm25_search(
        self, collection: str, text: str, *, tenant: str, limit: int = 10, filters: Sequence[Filter] = ()
    ) -> list[Hit]:
        """Objects ranked by BM25 keyword relevance of their text to `text`, best first."""
        ...

    def hybrid_search(
        self,
        collection: str,
        text: str,
        vector: Vector,
        *,
        tenant: str,
        alpha: float = 0.5,
        limit: int = 10,
        filters: Sequence[Filter] = (),
    ) -> list[Hit]:
        """Relative-score fusion: alpha * normalised vector score + (1 - alpha) * normalised BM25 score.

        alpha = 1 is pure vector search, alpha = 0 pure keyword search (Weaviate's meaning of alpha).
        """
        ...

    def optimize(self, collection: str, *, tenant: str) -> None:
        """Bring indexes up to date after bulk writes (a no-op where the server indexes on write)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_store(settings: Settings) -> VectorStore:
    """Weaviate when FINMED_WEAVIATE_URL is set, else the embedded LanceDB store at FINMED_LANCEDB_DIR."""
    if settings.weaviate_url:
        from core.retrieval.weaviate_store import WeaviateStore

        return WeaviateStore.connect(settings.weaviate_url, grpc_port=settings.weaviate_grpc_port)
    from core.retrieval.lance_store import LanceStore

    assert settings.lancedb_dir is not None  # filled by Settings
    return LanceStore(settings.lancedb_dir)
