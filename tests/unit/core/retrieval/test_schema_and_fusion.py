"""Filters, schemas and relative-score fusion: parsing, validation and the SQL the embedded store runs."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.retrieval.lance_store import filters_to_sql
from core.retrieval.rank_fusion import relative_score_fusion
from core.retrieval.schema import CollectionSpec, Filter, Hit, parse_filter, validate_filters

SPEC = CollectionSpec("cases", 4, {"level": "int", "amount": "float", "unit": "str", "flagged": "bool"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unit=cardiology", Filter("unit", "eq", "cardiology")),
        ("level>=3", Filter("level", "gte", 3)),
        ("amount < 10.5", Filter("amount", "lt", 10.5)),
        ("flagged=true", Filter("flagged", "eq", True)),
        ("unit in a, b ,c", Filter("unit", "in", ["a", "b", "c"])),
        ("level!=0", Filter("level", "ne", 0)),
    ],
)
def test_parse_filter_coerces_to_the_field_type(text: str, expected: Filter) -> None:
    assert parse_filter(SPEC, text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("country=DE", "has no field 'country'"),
        ("level>=high", "'high' is not a int"),
        ("flagged=maybe", "is not a bool"),
        ("just words", "cannot read filter"),
    ],
)
def test_parse_filter_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_filter(SPEC, text)


def test_validate_filters_refuses_ranges_on_text_and_wrong_types() -> None:
    with pytest.raises(ValidationError, match="range operator"):
        validate_filters(SPEC, [Filter("unit", "gt", "a")])
    with pytest.raises(ValidationError, match="field 'level' of collection 'cases' is int"):
        validate_filters(SPEC, [Filter("level", "eq", "3")])
    with pytest.raises(ValidationError, match="non-empty list"):
        validate_filters(SPEC, [Filter("level", "in", [])])


def test_filters_to_sql_quotes_values() -> None:
    sql = filters_to_sql(
        [Filter("unit", "eq", "O'Brien"), Filter("level", "in", [1, 2]), Filter("flagged", "eq", False)]
    )
    assert sql == "`unit` = 'O''Brien' AND `level` IN (1, 2) AND `flagged` = false"
    assert filters_to_sql([]) is None


def test_collection_spec_rejects_reserved_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="invalid field name 'text'"):
        CollectionSpec("c", 4, {"text": "str"})
    with pytest.raises(ValidationError, match="unknown type 'date'"):
        CollectionSpec("c", 4, {"when": "date"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="invalid collection name"):
        CollectionSpec("Bad-Name", 4)
    assert CollectionSpec.from_dict(SPEC.to_dict()) == SPEC


def _hits(pairs: list[tuple[str, float]]) -> list[Hit]:
    return [Hit(i, i, s, {}) for i, s in pairs]


def test_relative_score_fusion_matches_weaviate_semantics() -> None:
    vector = _hits([("a", 0.9), ("b", 0.7), ("c", 0.5)])
    keyword = _hits([("c", 7.0)])  # a single keyword hit normalises to 1, not 0
    assert [h.id for h in relative_score_fusion(vector, keyword, alpha=0.0, limit=3)][0] == "c"
    assert [h.id for h in relative_score_fusion(vector, keyword, alpha=1.0, limit=3)] == ["a", "b", "c"]
    fused = relative_score_fusion(vector, keyword, alpha=0.5, limit=2)
    # a: 0.5 * 1 (best vector) + 0; c: 0 (worst vector) + 0.5 * 1 (lone keyword hit); b: 0.5 * 0.5. A tie keeps
    # vector hits first, so a comes before c.
    assert [(h.id, h.score) for h in fused] == [("a", 0.5), ("c", 0.5)]
    third = relative_score_fusion(vector, keyword, alpha=0.5, limit=3)[2]
    assert third.id == "b" and third.score == pytest.approx(0.25, abs=1e-12)
    assert relative_score_fusion([], [], alpha=0.5, limit=5) == []
