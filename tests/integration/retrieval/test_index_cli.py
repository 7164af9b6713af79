"""`finmed index build|query|list` end to end on the embedded store with the real MiniLM-L6 model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.errors import ValidationError
from core.retrieval.lance_store import LanceStore
from core.settings import get_settings

RECORDS = [
    {"id": "c1", "text": "Wire transfer of 9,800 EUR to a new beneficiary at 03:12", "level": 4, "unit": "payments"},
    {"id": "c2", "text": "Card used in two countries within an hour", "level": 3, "unit": "cards"},
    {"text": "Chest x-ray shows no focal consolidation", "level": 0, "unit": "radiology"},
    {"text": "Monthly salary paid to the usual account", "level": 0, "unit": "payments"},
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_build_twice_is_idempotent_and_query_prints_a_table(tmp_path: Path) -> None:
    runner = CliRunner()
    records = _write(tmp_path / "cases.jsonl", RECORDS)
    args = ["index", "build", "--collection", "cases", "--in", str(records), "--tenant", "bank_a"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 written" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "0 written, 4 unchanged; 4 objects" in second.output
    store = LanceStore(get_settings().lancedb_dir)
    assert store.count("cases", tenant="bank_a") == 4
    assert store.count("cases") == 4
    assert set(store.fetch("cases", ["c1", "c2"], tenant="bank_a")) == {"c1", "c2"}

    _write(records, [{**RECORDS[0], "level": 5}, *RECORDS[1:]])  # one record changed: only it is rewritten
    third = runner.invoke(app, args)
    assert "1 written, 3 unchanged; 4 objects" in third.output
    fresh = LanceStore(get_settings().lancedb_dir)  # another handle: `store` may read a 1 s old version
    assert fresh.fetch("cases", ["c1"], tenant="bank_a")["c1"].metadata["level"] == 5

    query = ["index", "query", "--collection", "cases", "-t", "bank_a", "money sent abroad at night"]
    found = runner.invoke(app, [*query, "--filter", "level>=3", "--mode", "vector"])
    assert found.exit_code == 0, found.output
    assert "c1" in found.output and "Chest" not in found.output
    other_tenant = runner.invoke(app, [*query[:-3], "-t", "hospital_b", "money sent abroad at night"])
    assert "no matches" in other_tenant.output
    listing = runner.invoke(app, ["index", "list"])
    assert "cases" in listing.output and "bank_a" in listing.output


def test_bad_input_names_the_line_and_writes_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"id": "x", "level": 1}) + "\n")
    result = runner.invoke(app, ["index", "build", "--collection", "cases", "--in", str(bad)])
    assert isinstance(result.exception, ValidationError)
    assert f"{bad}:2: field 'text' is missing or empty" in str(result.exception)
    mixed = _write(tmp_path / "mixed.jsonl", [RECORDS[0], {**RECORDS[1], "level": "high"}])
    with pytest.raises(ValidationError, match=r"mixed.jsonl:2: field 'level' is str here but int earlier"):
        runner.invoke(app, ["index", "build", "--collection", "cases", "--in", str(mixed)], catch_exceptions=False)
    assert LanceStore(get_settings().lancedb_dir).list_collections() == []


def test_doctor_reports_collections_and_counts(minilm_embedder) -> None:
    from core.doctor import check_vectors
    from core.retrieval.schema import CollectionSpec, StoredObject

    settings = get_settings()
    assert "created on first" in check_vectors(settings)[0].detail
    store = LanceStore(settings.lancedb_dir)
    store.create_collection(CollectionSpec("reports", 384))
    vectors = minilm_embedder.encode(["a", "b"])
    store.upsert("reports", [StoredObject("r1", "a", vectors[0]), StoredObject("r2", "b", vectors[1])], tenant="h1")
    check = check_vectors(settings)[0]
    assert check.ok and "reports (2 objects)" in check.detail
