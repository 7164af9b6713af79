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
    ]
    good = result.frame
    assert good["source_row"].tolist() == [1, 2, 6, 7]  # row 6's unknown currency is flagged, not rejected
    assert good["account_id"].tolist() == ["a1", "a1", "a4", "a5"]
    assert good["currency"].tolist()[:3] == ["USD", "EUR", "XYZ"]
    assert good["odd_fields"].tolist() == ["", "", "unknown_currency", ""]
    assert [o.message() for o in result.odd] == ["1 row with an unknown currency code, scored; examples: row 6 'XYZ'"]
    assert good["timestamp"].iloc[1] == pd.Timestamp("2026-01-01 11:00")
    assert result.extra_features == ["risk_score_ext"] and result.passthrough == ["note"]
    assert good["transaction_id"].tolist() == ["row1", "row2", "row6", "row7"]


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


def test_odd_optional_fields_are_kept_flagged_and_counted() -> None:
    from domains.finance.ingest import validate

    raw = pd.DataFrame(
        {
            "account_id": ["a"] * 8,
            "timestamp": ["2026-01-01"] * 8,
            "amount": [1, 2, 3, 4, 5, 6, 7, 8],
            "currency": ["DEM", "frf", "VEF", "HRK", "XQQ", "USD", "ABC", None],  # withdrawn ISO 4217 codes are known
            "country": ["DD", "YU", "DE", "276", "76", "ZZ", "QQQ", None],  # ISO 3166-3 and numeric codes too
            "mcc": [5411, 5411.0, None, "0742", "54", "abcd", 6011, 1234],
            "lat": [10, 91, "x", None, 0, 0, 0, 0],
        }
    )
    result = validate(raw)
    assert not result.bad and len(result.frame) == 8 and result.n_input == 8
    by = {o.problem: o for o in result.odd}
    assert by["an unknown currency code"].count == 2
    assert by["an unknown currency code"].examples == [(5, "XQQ"), (7, "ABC")]
    assert by["an unknown country code"].count == 2 and by["an unknown merchant category code"].count == 2
    assert by["an invalid lat (location unknown)"].count == 2 and result.frame["lat"].isna().sum() == 3
    assert result.frame["odd_fields"].iloc[5] == "unknown_country,unknown_mcc"
