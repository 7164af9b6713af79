"""Reads transaction files (CSV or Parquet) onto canonical fields and separates good rows from bad ones with reasons.

Column mapping: `field=column` pairs rename file columns onto canonical fields; canonical fields present in the file
under their own name map themselves. A mapping that names an unknown canonical field or a column the file lacks is
one `ValidationError`. Row problems (missing required value, unparseable time, negative amount, unknown currency)
never stop the run: each bad row is listed with its 1-based row number and reason, the good rows go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import NotFoundError, ValidationError

CANONICAL = (
    "transaction_id",
    "account_id",
    "timestamp",
    "amount",
    "currency",
    "merchant_id",
    "channel",
    "country",
    "region",
    "lat",
    "lng",
    "device_id",
    "description",
)
REQUIRED = ("account_id", "timestamp", "amount")
TEXT_FIELDS = ("transaction_id", "account_id", "currency", "merchant_id", "channel", "country", "region", "device_id")
# Active ISO 4217 alphabetic codes (2024 list), so an unknown currency is caught without a network look-up.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF
    CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
    GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL
    LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
    TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR XOF XPD XPF XPT XSU
    XTS XUA XXX YER YEI ZAR ZMW ZWG ZWL""".split()
)


@dataclass
class BadRow:
    """One rejected input row: `row` is 1-based over the file's data rows."""

    row: int
    reason: str


@dataclass
class Ingested:
    """The outcome of reading a file.

    Attributes:
        frame: good rows with canonical columns (those present), extra numeric columns and `source_row` (1-based).
        bad: rejected rows with reasons, in row order.
        extra_features: names of the other numeric columns kept as features.
        passthrough: other non-numeric columns kept as they were (e.g. a label column).
    """

    frame: pd.DataFrame
    bad: list[BadRow] = field(default_factory=list)
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


def validate(frame: pd.DataFrame, *, allow_negative: bool = False) -> Ingested:
    """Check every row; return the good ones (typed) and the bad ones with reasons."""
    frame = frame.reset_index(drop=True).copy()
    n = len(frame)
    reasons = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, reason: str) -> None:
        fresh = mask & (reasons == "")
        reasons[fresh] = reason

    for name in REQUIRED:
        col = frame[name]
        empty = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        flag(empty, f"missing required {name}")
    stamps = pd.to_datetime(frame["timestamp"], errors="coerce", utc=True, format="mixed")
    flag(stamps.isna().to_numpy(), "unparseable timestamp")
    amounts = pd.to_numeric(frame["amount"], errors="coerce")
    flag(amounts.isna().to_numpy(), "amount is not a number")
    if not allow_negative:
        flag((amounts < 0).to_numpy(), "negative amount")
    if "currency" in frame.columns:
        cur = frame["currency"].astype("string").str.strip().str.upper()
        known = cur.isin(ISO_4217).fillna(False).to_numpy(dtype=bool)
        present = cur.notna().to_numpy() & (cur != "").fillna(False).to_numpy(dtype=bool)
        flag(present & ~known, "unknown currency")
        frame["currency"] = cur
    for name in ("lat", "lng"):
        if name in frame.columns:
            values = pd.to_numeric(frame[name], errors="coerce")
            limit = 90 if name == "lat" else 180
            flag((frame[name].notna() & (values.isna() | (values.abs() > limit))).to_numpy(), f"invalid {name}")
            frame[name] = values
    frame["timestamp"] = stamps.dt.tz_convert(None)
    frame["amount"] = amounts.astype(float)
    for name in TEXT_FIELDS:
        if name in frame.columns:
            frame[name] = frame[name].astype("string")
    if "description" in frame.columns:
        frame["description"] = frame["description"].astype("string").fillna("")
    frame["source_row"] = np.arange(1, n + 1)
    bad_mask = reasons != ""
    bad = [BadRow(int(i) + 1, str(reasons[i])) for i in np.flatnonzero(bad_mask)]
    good = frame.loc[~bad_mask].reset_index(drop=True)
    if "transaction_id" not in good.columns:
        good.insert(0, "transaction_id", ("row" + good["source_row"].astype(str)).astype("string"))
    others = [c for c in good.columns if c not in CANONICAL and c != "source_row"]
    extra = [c for c in others if pd.api.types.is_numeric_dtype(good[c]) and not pd.api.types.is_bool_dtype(good[c])]
    return Ingested(good, bad, extra, [c for c in others if c not in extra])


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
