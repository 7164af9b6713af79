"""Reads transaction files (CSV or Parquet) onto canonical fields and separates good rows from bad ones with reasons.

Column mapping: `field=column` pairs rename file columns onto canonical fields; canonical fields present in the file
under their own name map themselves. A mapping that names an unknown canonical field or a column the file lacks is
one `ValidationError`.

A row is rejected only when it cannot be scored at all: a missing account, timestamp or amount, an unparseable
timestamp or amount, or a negative amount. Each rejected row is listed with its 1-based row number and reason; the
others go on. An odd optional field never costs a row its score: an unknown currency, country or merchant category
code (codes.py knows historic ISO codes), a missing merchant code or an invalid latitude/longitude is kept (or
blanked, for coordinates), named in the row's `odd_fields` and counted per kind with examples (`Ingested.odd`), and
features.py marks the features that depend on it unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import NotFoundError, ValidationError
from domains.finance.codes import known_mask, normalise

CANONICAL = (
    "transaction_id",
    "account_id",
    "timestamp",
    "amount",
    "currency",
    "merchant_id",
    "mcc",
    "channel",
    "country",
    "region",
    "lat",
    "lng",
    "device_id",
    "description",
)
REQUIRED = ("account_id", "timestamp", "amount")
TEXT_FIELDS = (
    "transaction_id",
    "account_id",
    "currency",
    "merchant_id",
    "mcc",
    "channel",
    "country",
    "region",
    "device_id",
)
FLAG_COLUMN = "odd_fields"  # per good row: the optional fields that were odd (comma-separated), "" for none
MAX_EXAMPLES = 5


@dataclass
class BadRow:
    """One rejected input row: `row` is 1-based over the file's data rows."""

    row: int
    reason: str


@dataclass
class OddField:
    """One kind of odd optional field, kept and scored: how many rows, and the first few (row, value) examples."""

    field: str
    problem: str
    count: int
    examples: list[tuple[int, str]] = field(default_factory=list)

    def message(self) -> str:
        """E.g. "312 rows with an unknown currency code, scored; examples: row 4 'XYZ', row 9 'ABC'"."""
        shown = ", ".join(f"row {row} {value!r}" for row, value in self.examples)
        return f"{self.count} row{'s' if self.count != 1 else ''} with {self.problem}, scored; examples: {shown}"


@dataclass
class Ingested:
    """The outcome of reading a file.

    Attributes:
        frame: good rows with canonical columns (those present), extra numeric columns and `source_row` (1-based).
        bad: rejected rows with reasons, in row order.
        odd: odd optional fields of kept rows, one entry per kind (each row also names them in `odd_fields`).
        n_input: data rows read.
        extra_features: names of the other numeric columns kept as features.
        passthrough: other non-numeric columns kept as they were (e.g. a label column).
    """

    frame: pd.DataFrame
    bad: list[BadRow] = field(default_factory=list)
    odd: list[OddField] = field(default_factory=list)
    n_input: int = 0
    extra_features: list[str] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """Turn `["field=column", ...]` into {field: column}; unknown fields or malformed pairs raise ValidationError."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise ValidationError(f"--map {pair!r}: expected field=column, e.g. --map amount=amt_usd")
        if name not in CANONICAL:
            raise ValidationError(f"--map {pair!r}: unknown field {name!r}; known fields: {', '.join(CANONICAL)}")
        mapping[name] = column
    return mapping


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (by suffix) as raw columns."""
    if not path.is_file():
        raise NotFoundError(f"input file {path} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".txt", ".gz"):
        return pd.read_csv(path, low_memory=False)
    raise ValidationError(f"input file {path}: unknown format {path.suffix!r} (use .csv or .parquet)")


def apply_mapping(raw: pd.DataFrame, mapping: dict[str, str], *, source: str = "input") -> pd.DataFrame:
    """Rename mapped columns onto canonical names; require account_id, timestamp and amount afterwards."""
    missing = [f"{name}={column}" for name, column in mapping.items() if column not in raw.columns]
    if missing:
        raise ValidationError(
            f"{source}: mapped column(s) not in the file: {', '.join(missing)}; columns are: {', '.join(raw.columns)}"
        )
    taken = set(mapping.values())
    clashes = [c for c in raw.columns if c in mapping and c not in taken]
    frame = raw.drop(columns=clashes).rename(columns={column: name for name, column in mapping.items()})
    absent = [name for name in REQUIRED if name not in frame.columns]
    if absent:
        raise ValidationError(
            f"{source}: required field(s) {', '.join(absent)} not found; map them with --map field=column "
            f"(columns are: {', '.join(raw.columns)})"
        )
    return frame


ODD_CHECKS = (  # (field, the flag a row carries, how the report names it)
    ("currency", "unknown_currency", "an unknown currency code"),
    ("country", "unknown_country", "an unknown country code"),
    ("mcc", "unknown_mcc", "an unknown merchant category code"),
)


def validate(frame: pd.DataFrame, *, allow_negative: bool = False) -> Ingested:
    """Check every row; return the scorable ones (typed, odd fields flagged) and the rejected ones with reasons."""
    frame = frame.reset_index(drop=True).copy()
    n = len(frame)
    reasons = np.full(n, "", dtype=object)
    odd_flags: list[np.ndarray] = []  # one (n,) bool per flag, in `odd_names` order
    odd_names: list[str] = []
    odd: list[OddField] = []

    def reject(mask: np.ndarray, reason: str) -> None:
        fresh = mask & (reasons == "")
        reasons[fresh] = reason

    def mark(mask: np.ndarray, name: str, problem: str, column: str, values: pd.Series) -> None:
        odd_flags.append(mask)
        odd_names.append(name)
        odd.append(OddField(column, problem, 0, [(int(i) + 1, str(values.iloc[i])) for i in np.flatnonzero(mask)]))

    for name in REQUIRED:
        col = frame[name]
        empty = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        reject(empty, f"missing required {name}")
    stamps = pd.to_datetime(frame["timestamp"], errors="coerce", utc=True, format="mixed")
    reject(stamps.isna().to_numpy(), "unparseable timestamp")
    amounts = pd.to_numeric(frame["amount"], errors="coerce")
    reject(amounts.isna().to_numpy(), "amount is not a number")
    if not allow_negative:
        reject((amounts < 0).to_numpy(), "negative amount")
    for column, flag, problem in ODD_CHECKS:
        if column in frame.columns:
            codes = normalise(frame[column])
            mark(~known_mask(codes, column), flag, problem, column, frame[column])
            frame[column] = codes
    if "merchant_id" in frame.columns:
        merchant = frame["merchant_id"].astype("string").str.strip()
        mark(
            (merchant.isna() | (merchant == "")).to_numpy(dtype=bool),
            "missing_merchant",
            "no merchant code",
            "merchant_id",
            frame["merchant_id"],
        )
    for name in ("lat", "lng"):
        if name in frame.columns:
            values = pd.to_numeric(frame[name], errors="coerce")
            limit = 90 if name == "lat" else 180
            invalid = (frame[name].notna() & (values.isna() | (values.abs() > limit))).to_numpy(dtype=bool)
            mark(invalid, f"invalid_{name}", f"an invalid {name} (location unknown)", name, frame[name])
            frame[name] = values.mask(invalid)
    frame["timestamp"] = stamps.dt.tz_convert(None)
    frame["amount"] = amounts.astype(float)
    for name in TEXT_FIELDS:
        if name in frame.columns:
            frame[name] = frame[name].astype("string")
    if "description" in frame.columns:
        frame["description"] = frame["description"].astype("string").fillna("")
    frame["source_row"] = np.arange(1, n + 1)
    bad_mask = reasons != ""
    flags = np.full(n, "", dtype=object)
    for mask, name in zip(odd_flags, odd_names, strict=True):
        flags[mask] = np.where(flags[mask] == "", name, flags[mask] + "," + name)
    frame[FLAG_COLUMN] = flags
    kept_odd = []
    for mask, entry in zip(odd_flags, odd, strict=True):
        kept = mask & ~bad_mask
        if kept.any():
            good_rows = set((np.flatnonzero(kept) + 1).tolist())
            examples = [e for e in entry.examples if e[0] in good_rows][:MAX_EXAMPLES]
            kept_odd.append(OddField(entry.field, entry.problem, int(kept.sum()), examples))
    bad = [BadRow(int(i) + 1, str(reasons[i])) for i in np.flatnonzero(bad_mask)]
    good = frame.loc[~bad_mask].reset_index(drop=True)
    if "transaction_id" not in good.columns:
        good.insert(0, "transaction_id", ("row" + good["source_row"].astype(str)).astype("string"))
    others = [c for c in good.columns if c not in CANONICAL and c not in ("source_row", FLAG_COLUMN)]
    extra = [c for c in others if pd.api.types.is_numeric_dtype(good[c]) and not pd.api.types.is_bool_dtype(good[c])]
    return Ingested(good, bad, kept_odd, n, extra, [c for c in others if c not in extra])


def ingest(path: Path, mapping: dict[str, str] | None = None, *, exclude: tuple[str, ...] = ()) -> Ingested:
    """Read, map and validate a transaction file.

    Args:
        path: a .csv or .parquet file.
        mapping: {canonical field: file column}.
        exclude: columns never used as extra features (e.g. the label column).
    """
    frame = apply_mapping(read_table(path), mapping or {}, source=str(path))
    result = validate(frame)
    result.extra_features = [c for c in result.extra_features if c not in exclude]
    result.passthrough = [c for c in result.frame.columns if c in exclude] + result.passthrough
    return result
