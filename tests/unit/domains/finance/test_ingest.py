"""Ingest: column mapping, bad rows listed by number and reason, bad mappings as one clear error."""

from pathlib import Path

import pandas as pd
import pytest

from core.errors import ValidationError
from domains.finance.ingest import ingest, parse_mapping

RAW = pd.DataFrame(
    {
        "acct": ["a1", "a1", "a2", "a3", "", "a4", "a5"],
        "when": [
            "2026-01-01 10:00",
            "2026-01-01 11:00",
            "not a time",
            "2026-01-02 09:00",
            "2026-01-02",
            "2026-01-03",
            "2026-01-03",
        ],
        "amt": [10.0, 20.5, 5.0, -3.0, 1.0, 7.0, 8.0],
        "currency": ["USD", "eur", "USD", "USD", "USD", "XYZ", None],
        "risk_score_ext": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        "note": list("abcdefg"),
    }
)
MAP = ["account_id=acct", "timestamp=when", "amount=amt"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_good_and_bad_rows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tx{suffix}"
    RAW.to_csv(path, index=False) if suffix == ".csv" else RAW.to_parquet(path, index=False)
    result = ingest(path, parse_mapping(MAP))
    assert [(b.row, b.reason) for b in result.bad] == [
        (3, "unparseable timestamp"),
        (4, "negative amount"),
        (5, "missing required account_id"),
        (6, "unknown currency"),
    ]
    good = result.frame
    assert good["source_row"].tolist() == [1, 2, 7]
    assert good["account_id"].tolist() == ["a1", "a1", "a5"]
    assert good["currency"].tolist()[:2] == ["USD", "EUR"]
    assert good["timestamp"].iloc[1] == pd.Timestamp("2026-01-01 11:00")
    assert result.extra_features == ["risk_score_ext"] and result.passthrough == ["note"]
    assert good["transaction_id"].tolist() == ["row1", "row2", "row7"]


def test_bad_mappings_are_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    RAW.to_csv(path, index=False)
    with pytest.raises(ValidationError, match="unknown field 'amt_usd'"):
        parse_mapping(["amt_usd=amt"])
    with pytest.raises(ValidationError, match="expected field=column"):
        parse_mapping(["amount"])
    with pytest.raises(ValidationError, match=r"not in the file: amount=price"):
        ingest(path, parse_mapping(["account_id=acct", "timestamp=when", "amount=price"]))
    with pytest.raises(ValidationError, match="required field.*account_id, timestamp, amount"):
        ingest(path, {})


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "tx.xlsx"
    path.write_text("x")
    with pytest.raises(ValidationError, match="unknown format"):
        ingest(path, {})
