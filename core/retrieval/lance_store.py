"""The embedded default VectorStore: LanceDB on local disk, one table per (collection, tenant).

Layout under `root`: `<collection>/collection.json` holds the schema; `<collection>/` is a LanceDB database whose
tables are the tenants. A tenant's query opens only that tenant's table, so isolation does not depend on callers'
filters. Each table has a native (Lance) full-text index on `text` for BM25, created with the table, and an
IVF_HNSW_SQ cosine index on `vector` once it holds `index_min_rows` objects (smaller tables are searched exactly).
Rows written after an index was built are still searched (flat) until `optimize` folds them into the indexes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

# LanceDB's Rust logger prints deprecation warnings about internal score columns on every hybrid query; errors only.
os.environ.setdefault("LANCEDB_LOG", "error")

import lancedb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from lancedb.index import FTS, BTree, HnswSq  # noqa: E402

from core.errors import ConflictError, NotFoundError, ValidationError  # noqa: E402
from core.retrieval.rank_fusion import relative_score_fusion  # noqa: E402
from core.retrieval.schema import (
    CollectionSpec,
    Filter,
    Hit,
    StoredObject,
    Vector,  # noqa: E402
    check_collection_name,
    check_tenant,
    validate_filters,
    validate_objects,
)

INDEX_MIN_ROWS = 10_000
ROWS_PER_PARTITION = 50_000
SPEC_FILE = "collection.json"
_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
_SQL_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def filters_to_sql(filters: Sequence[Filter]) -> str | None:
    """Translate validated filters to a LanceDB (DataFusion SQL) `where` clause, or None when there are none."""
    parts = []
    for flt in filters:
        column = f"`{flt.field}`"
        if flt.op == "in":
            parts.append(f"{column} IN ({', '.join(_literal(v) for v in flt.value)})")  # type: ignore[attr-defined]
        else:
            parts.append(f"{column} {_SQL_OPS[flt.op]} {_literal(flt.value)}")
    return " AND ".join(parts) or None


class LanceStore:
    """VectorStore on LanceDB in folder `root` (FINMED_LANCEDB_DIR).

    Args:
        root: folder holding one sub-folder per collection.
        index_min_rows: build the approximate vector index once a tenant's table holds this many objects.
        ef: HNSW search breadth for indexed queries (higher: better recall, slower).
    """

    backend = "lancedb"

    def __init__(self, root: Path, *, index_min_rows: int = INDEX_MIN_ROWS, ef: int = 64) -> None:
        self.root = Path(root)
        self.index_min_rows = index_min_rows
        self.ef = ef
        self._specs: dict[str, CollectionSpec] = {}
        self._dbs: dict[str, Any] = {}
        self._tables: dict[tuple[str, str], Any] = {}

    # ----- collections -------------------------------------------------------------------------------------
    def create_collection(self, spec: CollectionSpec) -> CollectionSpec:
        path = self.root / spec.name
        if (path / SPEC_FILE).exists():
            existing = self.get_collection(spec.name)
            if existing != spec:
                raise ConflictError(
                    f"collection {spec.name!r} exists with another schema ({existing.to_dict()}); "
                    "drop it or use another name"
                )
            return existing
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{SPEC_FILE}.tmp"
        tmp.write_text(json.dumps(spec.to_dict(), indent=2))
        os.replace(tmp, path / SPEC_FILE)
        self._specs[spec.name] = spec
        return spec

    def get_collection(self, name: str) -> CollectionSpec:
        if name in self._specs:
            return self._specs[name]
        check_collection_name(name)
        spec_path = self.root / name / SPEC_FILE
        if not spec_path.exists():
            raise NotFoundError(
                f"collection {name!r} does not exist in {self.root}; build it with "
                f"`finmed index build --collection {name} --in FILE.jsonl`"
            )
        spec = CollectionSpec.from_dict(json.loads(spec_path.read_text()))
        self._specs[name] = spec
        return spec

    def list_collections(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / SPEC_FILE).exists())

    def drop_collection(self, name: str) -> None:
        self.get_collection(name)
        self._specs.pop(name, None)
        self._dbs.pop(name, None)
        for key in [k for k in self._tables if k[0] == name]:
            del self._tables[key]
        shutil.rmtree(self.root / name)

    def tenants(self, collection: str) -> list[str]:
        self.get_collection(collection)
        return sorted(self._db(collection).list_tables().tables)

    # ----- tables ------------------------------------------------------------------------------------------
    def _db(self, collection: str) -> Any:
        if collection not in self._dbs:
            self._dbs[collection] = lancedb.connect(
                self.root / collection, read_consistency_interval=timedelta(seconds=1)
            )
        return self._dbs[collection]

    def _arrow_schema(self, spec: CollectionSpec) -> pa.Schema:
        columns = [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), spec.dim)),
        ]
        columns += [pa.field(name, _ARROW_TYPES[kind]) for name, kind in spec.fields.items()]
        return pa.schema(columns)

    def _table(self, collection: str, tenant: str, *, create: bool = False) -> Any | None:
        """The tenant's table, or None when the tenant has no table and `create` is False."""
        check_tenant(tenant)
        key = (collection, tenant)
        if key in self._tables:
            return self._tables[key]
        spec = self.get_collection(collection)
        db = self._db(collection)
        if tenant in db.list_tables().tables:
            table = db.open_table(tenant)
        elif create:
            table = db.create_table(tenant, schema=self._arrow_schema(spec))
            table.create_index("text", config=FTS(with_position=False))
        else:
            return None
        self._tables[key] = table
        return table

    # ----- writes ------------------------------------------------------------------------------------------
    def upsert(self, collection: str, objects: Sequence[StoredObject], *, tenant: str) -> int:
        spec = self.get_collection(collection)
        check_tenant(tenant)
        validate_objects(spec, objects)
        if not objects:
            return 0
        unknown = {name for obj in objects for name in obj.metadata} - set(spec.fields)
        if unknown:
            raise ValidationError(
                f"collection {collection!r} has no field {sorted(unknown)[0]!r} (fields: {', '.join(spec.fields)})"
            )
        vectors = np.asarray([obj.vector for obj in objects], dtype=np.float32)  # (n, dim)
        data: dict[str, Any] = {
            "id": [obj.id for obj in objects],
            "text": [obj.text for obj in objects],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), spec.dim),
        }
        for name in spec.fields:
            data[name] = [obj.metadata.get(name) for obj in objects]
        batch = pa.table(data, schema=self._arrow_schema(spec))
        table = self._table(collection, tenant, create=True)
        assert table is not None  # create=True always gives a table
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(batch)
        return len(objects)

    def delete(self, collection: str, ids: Sequence[str], *, tenant: str) -> int:
        self.get_collection(collection)
        table = self._table(collection, tenant)
        if table is None or not ids:
            return 0
        where = f"id IN ({', '.join(_literal(i) for i in ids)})"
        existing = table.count_rows(where)
        if existing:
            table.delete(where)
        return existing

    def optimize(self, collection: str, *, tenant: str) -> None:
        table = self._table(collection, tenant)
        if table is None:
            return
        rows = table.count_rows()
        has_vector_index = any(idx.columns == ["vector"] for idx in table.list_indices())
        if not has_vector_index and rows >= self.index_min_rows:
            config = HnswSq(distance_type="cosine", num_partitions=max(1, rows // ROWS_PER_PARTITION))
            table.create_index("vector", config=config)
        if not any(idx.columns == ["id"] for idx in table.list_indices()) and rows >= self.index_min_rows:
            table.create_index("id", config=BTree())
        table.optimize()

    # ----- reads -------------------------------------------------------------------------------------------
    def count(self, collection: str, *, tenant: str | None = None) -> int:
        self.get_collection(collection)
        names = [tenant] if tenant is not None else self.tenants(collection)
        total = 0
        for name in names:
            table = self._table(collection, name)
            total += table.count_rows() if table is not None else 0
        return total

    def _hits(self, spec: CollectionSpec, rows: pa.Table, score_column: str | None) -> list[Hit]:
        columns = rows.to_pydict()
        hits = []
        for i, object_id in enumerate(columns["id"]):
            if score_column == "_distance":
                score = 1.0 - float(columns["_distance"][i])
            else:
                score = float(columns[score_column][i]) if score_column else 0.0
            metadata = {name: columns[name][i] for name in spec.fields}
            hits.append(Hit(id=object_id, text=columns["text"][i], score=score, metadata=metadata))
        return hits

    def _prepare(
        self, collection: str, tenant: str, filters: Sequence[Filter], limit: int
    ) -> tuple[CollectionSpec, Any, str | None]:
        spec = self.get_collection(collection)
        validate_filters(spec, filters)
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        return spec, self._table(collection, tenant), filters_to_sql(filters)

    def _query_vector(self, spec: CollectionSpec, vector: Vector) -> np.ndarray:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)  # (dim,)
        if query.shape[0] != spec.dim:
            raise ValidationError(
                f"query vector has {query.shape[0]} dimensions, collection {spec.name!r} expects {spec.dim}"
            )
        return query

    def fetch(self, collection: str, ids: Sequence[str], *, tenant: str) -> dict[str, Hit]:
        spec = self.get_collection(collection)
        table = self._table(collection, tenant)
        if table is None or not ids:
            return {}
        where = f"id IN ({', '.join(_literal(i) for i in ids)})"
        rows = table.search().where(where).select(["id", "text", *spec.fields]).limit(len(ids)).to_arrow()
        return {hit.id: hit for hit in self._hits(spec, rows, None)}

    def vector_search(
        self, collection: str, vector: Vector, *, tenant: str, limit: int = 10, filters: Sequence[Filter] = ()
    ) -> list[Hit]:
        spec, table, where = self._prepare(collection, tenant, filters, limit)
        query = self._query_vector(spec, vector)
        if table is None:
            return []
        builder = table.search(query, vector_column_name="vector").distance_type("cosine").ef(self.ef)
        if where:
            builder = builder.where(where, prefilter=True)
        rows = builder.select(["id", "text", *spec.fields, "_distance"]).limit(limit).to_arrow()
        return self._hits(spec, rows, "_distance")

    def bm25_search(
        self, collection: str, text: str, *, tenant: str, limit: int = 10, filters: Sequence[Filter] = ()
    ) -> list[Hit]:
        spec, table, where = self._prepare(collection, tenant, filters, limit)
        if table is None or not text.strip():
            return []
        builder = table.search(text, query_type="fts", fts_columns="text")
        if where:
            builder = builder.where(where, prefilter=True)
        rows = builder.select(["id", "text", *spec.fields, "_score"]).limit(limit).to_arrow()
        return self._hits(spec, rows, "_score")

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
        """Vector and BM25 legs (each `limit` deep, same filters), fused by relative_score_fusion (Weaviate's)."""
        if not 0.0 <= alpha <= 1.0:
            raise ValidationError(f"alpha must be between 0 and 1, got {alpha}")
        vector_hits = self.vector_search(collection, vector, tenant=tenant, limit=limit, filters=filters)
        keyword_hits = self.bm25_search(collection, text, tenant=tenant, limit=limit, filters=filters)
        return relative_score_fusion(vector_hits, keyword_hits, alpha=alpha, limit=limit)

    def close(self) -> None:
        self._tables.clear()
        self._dbs.clear()
