"""The production VectorStore: a Weaviate server through weaviate-client v4 (collections API, gRPC queries).

Mapping: our collection `cases` is the Weaviate collection `Finmed_cases` with multi-tenancy on (tenants created
on first write), one named vector `default` that we provide ourselves (cosine HNSW), a `record_id` property holding
our stable id (the Weaviate UUID is uuid5 of it, so re-upserting replaces), a BM25-searchable `text` and our typed
metadata fields (filterable, not searchable). The schema (dim and field types) is kept in the collection's
description so `get_collection` can give back the exact CollectionSpec. Hybrid uses relativeScoreFusion, the same
fusion the embedded store applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from core.errors import ConflictError, FinmedError, NotFoundError, SettingsError, ValidationError
from core.retrieval.schema import (
    CollectionSpec,
    Filter,
    Hit,
    StoredObject,
    Vector,
    check_collection_name,
    check_tenant,
    validate_filters,
    validate_objects,
)

PREFIX = "Finmed_"
VECTOR_NAME = "default"
ID_PROPERTY = "record_id"


def _weaviate_name(name: str) -> str:
    return PREFIX + check_collection_name(name)


class WeaviateStore:
    """VectorStore on a Weaviate server (FINMED_WEAVIATE_URL)."""

    backend = "weaviate"

    def __init__(self, client: Any) -> None:
        self.client = client
        self._specs: dict[str, CollectionSpec] = {}  # read once per store; saves a round trip per operation

    @classmethod
    def connect(cls, url: str, *, grpc_port: int = 50051) -> WeaviateStore:
        """Connect to `url` (http[s]://host:port) with gRPC on `grpc_port` of the same host."""
        import weaviate

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SettingsError(f"FINMED_WEAVIATE_URL={url!r} is not an http(s)://host:port URL")
        secure = parsed.scheme == "https"
        try:
            client = weaviate.connect_to_custom(
                http_host=parsed.hostname,
                http_port=parsed.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=parsed.hostname,
                grpc_port=grpc_port,
                grpc_secure=secure,
            )
        except Exception as exc:  # noqa: BLE001  (connection failures come in many client types)
            raise SettingsError(
                f"cannot reach Weaviate at FINMED_WEAVIATE_URL={url} (gRPC port {grpc_port}): {exc}"
            ) from None
        return cls(client)

    # ----- collections -------------------------------------------------------------------------------------
    def create_collection(self, spec: CollectionSpec) -> CollectionSpec:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

        name = _weaviate_name(spec.name)
        if self.client.collections.exists(name):
            existing = self.get_collection(spec.name)
            if existing != spec:
                raise ConflictError(
                    f"collection {spec.name!r} exists with another schema ({existing.to_dict()}); "
                    "drop it or use another name"
                )
            return existing
        types = {"str": DataType.TEXT, "int": DataType.INT, "float": DataType.NUMBER, "bool": DataType.BOOL}
        properties = [
            Property(
                name=ID_PROPERTY, data_type=DataType.TEXT, tokenization=Tokenization.FIELD, index_searchable=False
            ),
            Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
        ]
        for field, kind in spec.fields.items():
            searchable = False if kind == "str" else None
            tokenization = Tokenization.FIELD if kind == "str" else None
            properties.append(
                Property(
                    name=field,
                    data_type=types[kind],
                    tokenization=tokenization,
                    index_searchable=searchable,
                    index_range_filters=kind in ("int", "float"),
                )
            )
        self.client.collections.create(
            name=name,
            description=json.dumps(spec.to_dict()),
            properties=properties,
            vector_config=[
                Configure.Vectors.self_provided(
                    name=VECTOR_NAME,
                    vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE),
                )
            ],
            multi_tenancy_config=Configure.multi_tenancy(
                enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
            ),
        )
        return spec

    def get_collection(self, name: str) -> CollectionSpec:
        if name in self._specs:
            return self._specs[name]
        wname = _weaviate_name(name)
        if not self.client.collections.exists(wname):
            raise NotFoundError(
                f"collection {name!r} does not exist in Weaviate; build it with "
                f"`finmed index build --collection {name} --in FILE.jsonl`"
            )
        config = self.client.collections.use(wname).config.get()
        try:
            spec = CollectionSpec.from_dict(json.loads(config.description or ""))
        except (ValueError, KeyError):
            raise FinmedError(
                f"Weaviate collection {wname} was not created by finmed (no schema in its description)"
            ) from None
        self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        names = self.client.collections.list_all(simple=True)
        return sorted(n[len(PREFIX) :] for n in names if n.startswith(PREFIX))

    def drop_collection(self, name: str) -> None:
        self.get_collection(name)
        self.client.collections.delete(_weaviate_name(name))
        self._specs.pop(name, None)

    def tenants(self, collection: str) -> list[str]:
        self.get_collection(collection)
        return sorted(self.client.collections.use(_weaviate_name(collection)).tenants.get())

    # ----- helpers -----------------------------------------------------------------------------------------
    def _handle(self, collection: str, tenant: str) -> tuple[CollectionSpec, Any, bool]:
        """(spec, tenant-scoped collection handle, whether the tenant exists)."""
        spec = self.get_collection(collection)
        check_tenant(tenant)
        base = self.client.collections.use(_weaviate_name(collection))
        return spec, base.with_tenant(tenant), bool(base.tenants.exists(tenant))

    @staticmethod
    def _where(filters: Sequence[Filter]) -> Any:
        from weaviate.classes.query import Filter as WFilter

        parts = []
        for flt in filters:
            prop = WFilter.by_property(flt.field)
            value: Any = flt.value
            method = {
                "eq": prop.equal,
                "ne": prop.not_equal,
                "gt": prop.greater_than,
                "gte": prop.greater_or_equal,
                "lt": prop.less_than,
                "lte": prop.less_or_equal,
                "in": prop.contains_any,
            }[flt.op]
            parts.append(method(list(value) if flt.op == "in" else value))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else WFilter.all_of(parts)

    @staticmethod
    def _ids_filter(ids: Sequence[str]) -> Any:
        from weaviate.classes.query import Filter as WFilter

        return WFilter.by_property(ID_PROPERTY).contains_any(list(ids))

    def _hits(self, spec: CollectionSpec, objects: Sequence[Any], score: str | None) -> list[Hit]:
        hits = []
        for obj in objects:
            props = obj.properties
            if score == "distance":
                value = 1.0 - float(obj.metadata.distance)
            elif score == "score":
                value = float(obj.metadata.score)
            else:
                value = 0.0
            metadata = {name: props.get(name) for name in spec.fields}
            hits.append(
                Hit(id=str(props[ID_PROPERTY]), text=str(props.get("text") or ""), score=value, metadata=metadata)
            )
        return hits

    @staticmethod
    def _vector(spec: CollectionSpec, vector: Vector) -> list[float]:
        values = [float(v) for v in vector]
        if len(values) != spec.dim:
            raise ValidationError(
                f"query vector has {len(values)} dimensions, collection {spec.name!r} expects {spec.dim}"
            )
        return values

    # ----- writes ------------------------------------------------------------------------------------------
    def upsert(self, collection: str, objects: Sequence[StoredObject], *, tenant: str) -> int:
        from weaviate.classes.data import DataObject
        from weaviate.util import generate_uuid5

        spec, handle, _ = self._handle(collection, tenant)
        validate_objects(spec, objects)
        unknown = {name for obj in objects for name in obj.metadata} - set(spec.fields)
        if unknown:
            raise ValidationError(
                f"collection {collection!r} has no field {sorted(unknown)[0]!r} (fields: {', '.join(spec.fields)})"
            )
        if not objects:
            return 0
        batch = [
            DataObject(
                properties={ID_PROPERTY: obj.id, "text": obj.text, **{k: v for k, v in obj.metadata.items()}},
                uuid=generate_uuid5(obj.id),
                vector={VECTOR_NAME: [float(v) for v in obj.vector]},
            )
            for obj in objects
        ]
        result = handle.data.insert_many(batch)
        if result.has_errors:
            index, error = next(iter(result.errors.items()))
            raise FinmedError(f"Weaviate rejected object {objects[index].id!r} of {collection!r}: {error.message}")
        return len(objects)

    def delete(self, collection: str, ids: Sequence[str], *, tenant: str) -> int:
        _, handle, exists = self._handle(collection, tenant)
        if not exists or not ids:
            return 0
        return int(handle.data.delete_many(where=self._ids_filter(ids)).successful)

    def optimize(self, collection: str, *, tenant: str) -> None:
        """Weaviate indexes on write; nothing to do."""
        self._handle(collection, tenant)

    # ----- reads -------------------------------------------------------------------------------------------
    def count(self, collection: str, *, tenant: str | None = None) -> int:
        names = [tenant] if tenant is not None else self.tenants(collection)
        total = 0
        for name in names:
            _, handle, exists = self._handle(collection, name)
            if exists:
                total += int(handle.aggregate.over_all(total_count=True).total_count or 0)
        return total

    def fetch(self, collection: str, ids: Sequence[str], *, tenant: str) -> dict[str, Hit]:
        spec, handle, exists = self._handle(collection, tenant)
        if not exists or not ids:
            return {}
        result = handle.query.fetch_objects(filters=self._ids_filter(ids), limit=len(ids))
        return {hit.id: hit for hit in self._hits(spec, result.objects, None)}

    def vector_search(
        self, collection: str, vector: Vector, *, tenant: str, limit: int = 10, filters: Sequence[Filter] = ()
    ) -> list[Hit]:
        from weaviate.classes.query import MetadataQuery

        spec, handle, exists = self._handle(collection, tenant)
        validate_filters(spec, filters)
        query = self._vector(spec, vector)
        if not exists:
            return []
        result = handle.query.near_vector(
            near_vector=query,
            target_vector=VECTOR_NAME,
            limit=limit,
            filters=self._where(filters),
            return_metadata=MetadataQuery(distance=True),
        )
        return self._hits(spec, result.objects, "distance")

    def bm25_search(
        self, collection: str, text: str, *, tenant: str, limit: int = 10, filters: Sequence[Filter] = ()
    ) -> list[Hit]:
        from weaviate.classes.query import MetadataQuery

        spec, handle, exists = self._handle(collection, tenant)
        validate_filters(spec, filters)
        if not exists or not text.strip():
            return []
        result = handle.query.bm25(
            query=text,
            query_properties=["text"],
            limit=limit,
            filters=self._where(filters),
            return_metadata=MetadataQuery(score=True),
        )
        return self._hits(spec, result.objects, "score")

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
        from weaviate.classes.query import HybridFusion, MetadataQuery

        if not 0.0 <= alpha <= 1.0:
            raise ValidationError(f"alpha must be between 0 and 1, got {alpha}")
        spec, handle, exists = self._handle(collection, tenant)
        validate_filters(spec, filters)
        query = self._vector(spec, vector)
        if not exists:
            return []
        if not text.strip():
            return self.vector_search(collection, query, tenant=tenant, limit=limit, filters=filters)
        result = handle.query.hybrid(
            query=text,
            vector=query,
            target_vector=VECTOR_NAME,
            alpha=alpha,
            fusion_type=HybridFusion.RELATIVE_SCORE,
            query_properties=["text"],
            limit=limit,
            filters=self._where(filters),
            return_metadata=MetadataQuery(score=True),
        )
        return self._hits(spec, result.objects, "score")

    def close(self) -> None:
        self.client.close()
