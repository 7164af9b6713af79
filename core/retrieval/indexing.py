"""Index a JSONL file into a collection (validated whole first, resumable, idempotent) and query it by text.

The services behind `finmed index build|query`; the CLI and the app call these, nothing else.
A record is a JSON object with `text` (required), `id` (optional; else a content hash) and metadata either under
`metadata` or as the other top-level keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import NotFoundError, ValidationError
from core.retrieval.embeddings import Embedder
from core.retrieval.schema import (
    CollectionSpec,
    FieldType,
    Hit,
    SearchMode,
    StoredObject,
    parse_filter,
    validate_objects,
)
from core.retrieval.store import VectorStore


@dataclass(frozen=True)
class Record:
    """One input line: stable id, text and metadata."""

    line: int
    id: str
    text: str
    metadata: dict[str, object]


@dataclass(frozen=True)
class BuildReport:
    """What a build did: records read, written (new or changed), skipped (already identical), final tenant count."""

    records: int
    written: int
    skipped: int
    count: int


def content_id(text: str, metadata: dict[str, object]) -> str:
    """Stable id for a record without one: sha256 of its text and sorted metadata (32 hex chars)."""
    payload = json.dumps({"text": text, "metadata": metadata}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def read_records(path: Path) -> list[Record]:
    """Read and check every line of a JSONL file; ValidationError naming the first bad line."""
    if not path.exists():
        raise NotFoundError(f"input file {path} does not exist")
    records: list[Record] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            if not isinstance(raw, dict):
                raise ValidationError(f"{path}:{line_no}: expected a JSON object")
            text = raw.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ValidationError(f"{path}:{line_no}: field 'text' is missing or empty")
            if "metadata" in raw:
                metadata = raw["metadata"]
                if not isinstance(metadata, dict):
                    raise ValidationError(f"{path}:{line_no}: field 'metadata' must be an object")
            else:
                metadata = {k: v for k, v in raw.items() if k not in ("id", "text")}
            raw_id = raw.get("id")
            if raw_id is not None and (not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or raw_id == ""):
                raise ValidationError(f"{path}:{line_no}: field 'id' must be a non-empty string or integer")
            record_id = str(raw_id) if raw_id is not None else content_id(text, metadata)
            if record_id in seen:
                raise ValidationError(f"{path}:{line_no}: id {record_id!r} already used on line {seen[record_id]}")
            seen[record_id] = line_no
            records.append(Record(line_no, record_id, text, metadata))
    if not records:
        raise ValidationError(f"{path}: no records (expected one JSON object per line)")
    return records


def infer_spec(name: str, dim: int, records: Sequence[Record], path: Path) -> CollectionSpec:
    """A schema from the records' metadata: bool, int, float (ints and floats mixed) or str per field."""
    kinds: dict[str, FieldType] = {}
    for record in records:
        for field, value in record.metadata.items():
            if value is None:
                continue
            kind: FieldType
            if isinstance(value, bool):
                kind = "bool"
            elif isinstance(value, int):
                kind = "int"
            elif isinstance(value, float):
                kind = "float"
            elif isinstance(value, str):
                kind = "str"
            else:
                raise ValidationError(f"{path}:{record.line}: field {field!r} must be a string, number or bool")
            previous = kinds.get(field, kind)
            if {previous, kind} == {"int", "float"}:
                kind = "float"
            elif previous != kind:
                raise ValidationError(f"{path}:{record.line}: field {field!r} is {kind} here but {previous} earlier")
            kinds[field] = kind
    return CollectionSpec(name=name, dim=dim, fields=kinds)


def _coerce_numbers(spec: CollectionSpec, metadata: dict[str, object]) -> dict[str, object]:
    """Ints in float fields become floats (JSON writes 3.0 as 3)."""
    return {
        k: float(v) if spec.fields.get(k) == "float" and isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in metadata.items()
    }


def build_index(
    store: VectorStore,
    embedder: Embedder,
    *,
    collection: str,
    path: Path,
    tenant: str,
    batch_size: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> BuildReport:
    """Upsert every record of `path` into `collection` for `tenant`, skipping objects already stored identically.

    Everything is validated before the first write. Ids are stable, so a re-run (or a run after an interruption)
    writes only what is missing or changed, and the count does not grow.

    Args:
        on_batch: called with the number of records handled after each batch (for progress bars).
    """
    records = read_records(path)
    try:
        spec = store.get_collection(collection)
    except NotFoundError:
        spec = infer_spec(collection, embedder.dim, records, path)
    if spec.dim != embedder.dim:
        raise ValidationError(
            f"collection {collection!r} holds {spec.dim}-d vectors but the embedding model gives {embedder.dim}-d; "
            "use the model it was built with (FINMED_EMBEDDING_MODEL) or another collection"
        )
    placeholder = np.zeros(spec.dim, dtype=np.float32)
    for record in records:
        try:
            validate_objects(spec, [StoredObject(record.id, record.text, placeholder, record.metadata)])
        except ValidationError as exc:
            raise ValidationError(f"{path}:{record.line}: {exc}") from None
        unknown = set(record.metadata) - set(spec.fields)
        if unknown:
            raise ValidationError(
                f"{path}:{record.line}: collection {collection!r} has no field {sorted(unknown)[0]!r} "
                f"(fields: {', '.join(spec.fields) or 'none'})"
            )
    store.create_collection(spec)
    written = skipped = 0
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        stored = store.fetch(collection, [r.id for r in batch], tenant=tenant)
        todo = []
        for record in batch:
            metadata = _coerce_numbers(spec, record.metadata)
            have = stored.get(record.id)
            same_meta = have is not None and all(have.metadata.get(k) == metadata.get(k) for k in spec.fields)
            if have is not None and have.text == record.text and same_meta:
                skipped += 1
            else:
                todo.append((record, metadata))
        if todo:
            vectors = embedder.encode([r.text for r, _ in todo])  # (len(todo), dim)
            objects = [StoredObject(r.id, r.text, vectors[i], m) for i, (r, m) in enumerate(todo)]
            written += store.upsert(collection, objects, tenant=tenant)
        if on_batch is not None:
            on_batch(len(batch))
    store.optimize(collection, tenant=tenant)
    return BuildReport(len(records), written, skipped, store.count(collection, tenant=tenant))


def query_index(
    store: VectorStore,
    embedder: Embedder,
    *,
    collection: str,
    text: str,
    tenant: str,
    mode: SearchMode = "hybrid",
    alpha: float = 0.5,
    filters: Sequence[str] = (),
    limit: int = 10,
) -> list[Hit]:
    """Search `collection` for `text` in one mode, with CLI-style filters such as `level>=3` or `unit in a,b`."""
    spec = store.get_collection(collection)
    parsed = [parse_filter(spec, expression) for expression in filters]
    if mode == "bm25":
        return store.bm25_search(collection, text, tenant=tenant, limit=limit, filters=parsed)
    vector = embedder.encode([text])[0]  # (dim,)
    if mode == "vector":
        return store.vector_search(collection, vector, tenant=tenant, limit=limit, filters=parsed)
    return store.hybrid_search(collection, text, vector, tenant=tenant, alpha=alpha, limit=limit, filters=parsed)
