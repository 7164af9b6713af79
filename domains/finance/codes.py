"""The code lists optional transaction fields are checked against: currencies, countries and merchant category codes.

A code outside its list never stops a transaction from being scored (ingest keeps the row, marks the field unknown
and counts it); the lists only decide what "unknown" means, so they must know old codes too — an export that spans
years carries withdrawn currencies (DEM, FRF, VEF, HRK) and countries (DD, YU, AN).

- Currencies: the ISO 4217 codes CLDR knows, current and historic (babel's `list_currencies`); the ISO list files
  in pycountry and iso4217 hold only the current codes (list one), not the historic list three.
- Countries: ISO 3166-1 alpha-2, alpha-3 and numeric codes, and the withdrawn ones of ISO 3166-3 (pycountry).
- Merchant category codes: ISO 18245 codes are four digits; no maintained package ships the assigned list, so the
  format is what is checked.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

MCC_RE = re.compile(r"^\d{4}$")


@lru_cache(maxsize=1)
def currency_codes() -> frozenset[str]:
    """ISO 4217 alphabetic codes, current and historic (upper case)."""
    from babel.numbers import list_currencies

    return frozenset(code.upper() for code in list_currencies())


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2, alpha-3 and numeric codes plus the withdrawn ISO 3166-3 ones (upper case)."""
    import pycountry

    codes: set[str] = set()
    for country in [*pycountry.countries, *pycountry.historic_countries]:
        for attr in ("alpha_2", "alpha_3", "numeric"):
            value = getattr(country, attr, None)
            if value:
                codes.add(str(value).upper())
    return frozenset(codes)


def normalise(values: pd.Series) -> pd.Series:
    """Codes as stripped upper-case strings; empty strings become missing (whole numbers read as floats, e.g.
    5411.0 from a CSV column with gaps, lose their ".0")."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == whole.round()).all():
            values = values.astype("Int64")
    out = values.astype("string").str.strip().str.upper().str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    return out.mask(out == "")


def known_mask(values: pd.Series, field: str) -> np.ndarray:
    """True where a present code is in its list, shape (n,); missing values count as known (nothing to check).

    Args:
        values: normalised codes (see `normalise`).
        field: "currency", "country" or "mcc".
    """
    present = values.notna().to_numpy(dtype=bool)
    if field == "currency":
        ok = values.isin(currency_codes()).fillna(False).to_numpy(dtype=bool)
    elif field == "country":
        # numeric country codes often arrive without their leading zeros (e.g. 76 for 076, Brazil)
        padded = values.where(~values.str.fullmatch(r"\d{1,3}").fillna(False), values.str.zfill(3))
        ok = padded.isin(country_codes()).fillna(False).to_numpy(dtype=bool)
    elif field == "mcc":
        ok = values.str.fullmatch(MCC_RE.pattern).fillna(False).to_numpy(dtype=bool)
    else:
        raise ValueError(f"no code list for field {field!r}")
    return ~present | ok
