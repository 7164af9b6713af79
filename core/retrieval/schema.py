"""What every vector store agrees on: collection specs, stored objects, filters and hits, validated once here."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.errors import ValidationError

FieldType = Literal["str", "int", "float", "bool"]
FilterOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in"]
SearchMode = Literal["vector", "bm25", "hybrid"]
Vector = Sequence[float] | np.ndarray  # shape (dim,)

FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "float": (int, float), "bool": bool}
RESERVED_FIELDS = frozenset({"id", "text", "vector", "record_id", "tenant", "score"})
DEFAULT_TENANT = "default"

_COLLECTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_collection_name(name: str) -> str:
    """Return `name` when it is a valid collection name (lower case, digits, underscores; starts with a letter)."""
    if not _COLLECTION_RE.match(name):
        raise ValidationError(
            f"invalid collection name {name!r}: use lower-case letters, digits and '_', starting with a letter"
        )
    return name


def check_tenant(tenant: str) -> str:
    """Return `tenant` when it is a valid tenant name (letters, digits, '_' and '-', at most 64)."""
    if not _TENANT_RE.match(tenant):
        raise ValidationError(f"invalid tenant {tenant!r}: use letters, digits, '_' and '-' (at most 64 characters)")
    return tenant


@dataclass(frozen=True)
class CollectionSpec:
    """A collection's schema: its name, vector dimension and typed metadata fields.

    Every object also has an `id` (stable, caller-chosen), a `text` (BM25-indexed) and a `vector` of `dim` floats.
    """

    name: str
    dim: int
    fields: Mapping[str, FieldType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_collection_name(self.name)
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValidationError(f"collection {self.name!r}: dim must be a positive integer, got {self.dim!r}")
        for name, kind in self.fields.items():
            if not _FIELD_RE.match(name) or name in RESERVED_FIELDS:
                raise ValidationError(
                    f"collection {self.name!r}: invalid field name {name!r} (lower case, not one of "
                    f"{', '.join(sorted(RESERVED_FIELDS))})"
                )
            if kind not in FIELD_TYPES:
                raise ValidationError(
                    f"collection {self.name!r}: field {name!r} has unknown type {kind!r}; use str, int, float or bool"
                )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (stored next to the data by each backend)."""
        return {"name": self.name, "dim": self.dim, "fields": dict(self.fields)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CollectionSpec:
        """Inverse of `to_dict`."""
        return cls(name=str(data["name"]), dim=int(data["dim"]), fields=dict(data.get("fields") or {}))  # type: ignore[arg-type, call-overload]

    def field_type(self, name: str) -> FieldType:
        """The type of metadata field `name`; ValidationError naming the collection's fields when it has none."""
        if name not in self.fields:
            known = ", ".join(sorted(self.fields)) or "none"
            raise ValidationError(f"collection {self.name!r} has no field {name!r} (fields: {known})")
        return self.fields[name]


@dataclass(frozen=True)
class StoredObject:
    """One object to upsert: stable id, text, vector (shape (dim,)) and metadata matching the collection's fields."""

    id: str
    text: str
    vector: Vector
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result. `score` is higher-is-better: cosine similarity, BM25 score or fused relevance."""

    id: str
    text: str
    score: float
    metadata: dict[str, object]


@dataclass(frozen=True)
class Filter:
    """A metadata condition: `field op value`; for `in`, `value` is a non-empty list."""

    field: str
    op: FilterOp
    value: object


def _check_value(spec: CollectionSpec, name: str, value: object, where: str) -> None:
    kind = spec.field_type(name)
    expected = FIELD_TYPES[kind]
    ok = isinstance(value, expected) and not (kind != "bool" and isinstance(value, bool))
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        raise ValidationError(f"{where}: field {name!r} of collection {spec.name!r} is {kind}, got {value!r}")


def validate_filters(spec: CollectionSpec, filters: Sequence[Filter]) -> None:
    """Check that every filter names a field of `spec` and carries values of its type."""
    for flt in filters:
        where = f"filter on {flt.field!r}"
        if flt.op == "in":
            if not isinstance(flt.value, list | tuple) or not flt.value:
                raise ValidationError(f"{where}: 'in' needs a non-empty list of values")
            for item in flt.value:
                _check_value(spec, flt.field, item, where)
        else:
            _check_value(spec, flt.field, flt.value, where)
            if flt.op in ("gt", "gte", "lt", "lte") and spec.fields[flt.field] in ("str", "bool"):
                raise ValidationError(f"{where}: range operator {flt.op!r} needs an int or float field")


def validate_objects(spec: CollectionSpec, objects: Sequence[StoredObject]) -> None:
    """Check ids, vector dimension and metadata of objects before any is written (all or nothing)."""
    seen: set[str] = set()
    for obj in objects:
        if not isinstance(obj.id, str) or not obj.id:
            raise ValidationError(f"collection {spec.name!r}: an object has an empty id")
        if obj.id in seen:
            raise ValidationError(f"collection {spec.name!r}: id {obj.id!r} appears twice in one upsert")
        seen.add(obj.id)
        if len(obj.vector) != spec.dim:
            raise ValidationError(
                f"object {obj.id!r}: vector has {len(obj.vector)} dimensions, "
                f"collection {spec.name!r} expects {spec.dim}"
            )
        if not isinstance(obj.text, str):
            raise ValidationError(f"object {obj.id!r}: text must be a string")
        for name, value in obj.metadata.items():
            if value is not None:
                _check_value(spec, name, value, f"object {obj.id!r}")


_OPS = {"=": "eq", "!=": "ne", ">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}
_FILTER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|>=|<=|=|>|<|\bin\b)\s*(.*)$")


def _coerce(spec: CollectionSpec, name: str, raw: str) -> object:
    kind = spec.field_type(name)
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValidationError(f"filter on {name!r}: {raw!r} is not a {kind}") from None
    if kind == "bool":
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValidationError(f"filter on {name!r}: {raw!r} is not a bool (true/false)")
        return raw.lower() in ("true", "1", "yes")
    return raw


def parse_filter(spec: CollectionSpec, expression: str) -> Filter:
    """Parse a CLI filter such as `level>=3`, `unit=cardiology` or `country in DE,FR` against `spec`'s field types."""
    match = _FILTER_RE.match(expression)
    if not match:
        raise ValidationError(
            f"cannot read filter {expression!r}: use FIELD=VALUE, FIELD>=VALUE (also > < <= !=) or 'FIELD in A,B'"
        )
    name, op, raw = match.groups()
    if op == "in":
        values = [_coerce(spec, name, part) for part in raw.split(",") if part.strip()]
        return Filter(name, "in", values)
    return Filter(name, _OPS[op], _coerce(spec, name, raw))  # type: ignore[arg-type]
