"""Mask personal data (emails, phones, card numbers, IBANs, national IDs, labelled names and dates) before it is stored.

Masking must not eat data: a reviewer who sees a transaction timestamp `2019-03-14 02:41:05` as `[PHONE]:41:05`
cannot judge the transaction. So every candidate span is found on the original text and must pass a check before
it is replaced:
- identifiers with a checksum are confirmed with python-stdnum (payment cards: Luhn plus a card-network prefix;
  IBAN: ISO 13616 mod 97; US SSN: area/group/serial rules; Chinese resident ID: ISO 7064 check digit; NHS number:
  mod 11);
- dates, times, timestamps, amounts, decimals, coordinates and IP addresses are found first and *protect* their
  characters: no phone, card or ID candidate may overlap them;
- a phone needs a phone's shape (a `+` country code, parentheses, or separated digit groups of 7-15 digits) or a
  label before it (`tel`, `phone`, `mobile`, `电话`, `手机`); a bare run of digits is an ID or an amount, not a phone;
- names and dates are personal only where a label says so (`Patient: Jane Doe`, `DOB: 1950-01-02`).

The candidate patterns are regular expressions written here because the maintained PII libraries (Presidio,
scrubadub) pull spaCy models that must be downloaded at run time, which finmed does not allow; python-stdnum has no
UK National Insurance number module, so that one pattern carries the official prefix rules itself. The `[KIND]`
placeholders and the `mask_pii` / `mask_pii_report` signatures are stable: stored review items and training records
rely on them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from stdnum import iban as std_iban
from stdnum import luhn as std_luhn
from stdnum.cn import ric as std_cn_ric
from stdnum.gb import nhs as std_gb_nhs
from stdnum.us import ssn as std_us_ssn

# --- spans that are data, never personal (protected) --------------------------------------------------------------
_DATE = r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4}年\d{1,2}月\d{1,2}日)"
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?(?:\s?[AaPp][Mm])?"
_TZ = r"(?:Z|[+-]\d{2}:?\d{2})?"
TIMESTAMP = re.compile(rf"(?<![\w.]){_DATE}(?:[T ]{_TIME}{_TZ})?(?![\w])|(?<![\w:]){_TIME}{_TZ}(?![\w:])")
# Amounts and plain decimals: 1,234,567.89 / 1 234,56 / $12.50 / 12.5% / 40.7128; IPv4 addresses.
AMOUNT = re.compile(
    r"(?:[$€£¥]\s?)?(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])"
    r"|(?<![\w.])-?\d+\.\d+(?![\w.])"
    r"|(?<![\w.])\d+(?:\.\d+)?\s?%"
    r"|(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"
)

# --- personal data candidates -------------------------------------------------------------------------------------
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
CARD = re.compile(r"(?<![\w:-])(?<!\d[.,])\d(?:[ -]?\d){12,18}(?![\w:-]|[.,]\d)")
SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
CN_RIC = re.compile(r"(?<!\d)\d{17}[\dXx](?![\w])")
NHS = re.compile(
    r"(?P<label>\bNHS(?:\s*(?:no\.?|number|#))?\s*[:#]?\s*)"
    r"(?P<value>\d{3}[ -]?\d{3}[ -]?\d{4})(?![\w-])",
    re.I,
)
LABELLED_ID = re.compile(
    r"(?P<label>\b(?:SSN|MRN|NIN|NINO|National ID|Patient ID|ID card|Passport|身份证号?)(?:\s*(?:no\.?|number|#))?"
    r"\s*[:#：]?\s*)(?P<value>[A-Z0-9][A-Z0-9-]{4,19})\b",
    re.IGNORECASE,
)
PHONE = re.compile(r"(?<![\w+.:/-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w:/-])")
PHONE_LABEL = re.compile(
    r"(?:\b(?:tel|phone|mobile|cell|fax|call|contact)\b\.?|电话|手机|联系方式)\s*[:：#]?\s*$", re.I
)
# Names and dates only after a label: "Patient: Jane Q. Doe", "Name: O'Brien, Mary", "DOB: 1950-01-02".
_NAME_WORD = r"(?:[A-Z](?:[a-z]*['’-][A-Z])?[a-z]+|[A-Z]\.)"
NAME = re.compile(
    r"(?P<label>\b(?:Patient|Name|Patient name|Customer|Account holder|Referring physician)\s*:\s*)"
    rf"(?P<value>{_NAME_WORD}(?:,?[ ]+{_NAME_WORD}){{0,3}})"
)
LABELLED_DATE = re.compile(
    rf"(?P<label>\b(?:DOB|D\.O\.B\.|Date of birth|Born|Birth date)\s*[:：]?\s*|出生日期\s*[:：]?\s*)(?P<value>{_DATE})",
    re.IGNORECASE,
)
# Card network prefixes (IIN ranges): Visa, Mastercard, Amex, Discover, JCB, UnionPay, Diners, Maestro.
CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6011|65|64[4-9]|35|62|3[068]|5018|6304)")

KINDS = ("EMAIL", "IBAN", "CARD", "NATIONAL_ID", "PHONE", "NAME", "DATE")


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (python-stdnum's `luhn`)."""
    return digits.isdigit() and std_luhn.is_valid(digits)


def _digits(span: str) -> str:
    return re.sub(r"\D", "", span)


def _card_ok(span: str) -> bool:
    digits = _digits(span)
    return 13 <= len(digits) <= 19 and bool(CARD_PREFIX.match(digits)) and luhn_ok(digits)


def _phone_ok(text: str, start: int, span: str) -> bool:
    """A phone's shape (7-15 digits written with `+`, parentheses or separators) or a phone label before it."""
    digits = _digits(span)
    if not 7 <= len(digits) <= 15:
        return False
    if PHONE_LABEL.search(text[max(0, start - 24) : start]):
        return True
    if span.startswith("+") or "(" in span:
        return True
    groups = [len(g) for g in re.split(r"[ .-]", span)]
    if not 10 <= len(digits) <= 11 or len(groups) < 2:
        return False
    nanp = groups == [3, 3, 4] and digits[0] in "23456789"
    cn_mobile = groups == [3, 4, 4] and re.match(r"1[3-9]", digits) is not None
    return digits.startswith("0") or nanp or cn_mobile  # a trunk prefix, a US/Canada or a Chinese mobile shape


@dataclass
class MaskResult:
    """Masked text and how many spans of each kind were replaced."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str
    keep_prefix: str = ""  # a label kept in front of the placeholder ("Patient: ")


def _candidates(text: str) -> list[_Span]:
    spans: list[_Span] = []
    labelled = ((NAME, "NAME"), (LABELLED_DATE, "DATE"), (NHS, "NATIONAL_ID"), (LABELLED_ID, "NATIONAL_ID"))
    for pattern, kind in labelled:
        for m in pattern.finditer(text):
            value = m.group("value")
            if kind == "NATIONAL_ID" and not any(ch.isdigit() for ch in value):
                continue
            if pattern is NHS and not std_gb_nhs.is_valid(_digits(value)):
                continue
            spans.append(_Span(m.start(), m.end(), kind, m.group("label")))
    checks = (
        (EMAIL, "EMAIL", lambda s, i: True),
        (IBAN, "IBAN", lambda s, i: std_iban.is_valid(s)),
        (CN_RIC, "NATIONAL_ID", lambda s, i: std_cn_ric.is_valid(s)),
        (CARD, "CARD", lambda s, i: _card_ok(s)),
        (SSN, "NATIONAL_ID", lambda s, i: std_us_ssn.is_valid(s)),
        (NINO, "NATIONAL_ID", lambda s, i: True),
        (PHONE, "PHONE", lambda s, i: _phone_ok(text, i, s)),
    )
    for pattern, kind, ok in checks:
        for m in pattern.finditer(text):
            if ok(m.group(0), m.start()):
                spans.append(_Span(m.start(), m.end(), kind))
    return spans


def _protected(text: str) -> list[tuple[int, int]]:
    return [m.span() for pattern in (TIMESTAMP, AMOUNT) for m in pattern.finditer(text)]


def mask_pii_report(text: str) -> MaskResult:
    """Replace personal data in `text` with `[KIND]` placeholders and count what was replaced.

    Kinds: EMAIL, IBAN, CARD, NATIONAL_ID, PHONE, NAME and DATE (the last two only after a label). Labelled spans
    come first, then checksummed identifiers, then phones; a span that overlaps an earlier one, or (for unlabelled
    digits) a date, time, amount or decimal, is left alone. See the module docstring.
    """
    candidates = _candidates(text)
    protected = _protected(text) if candidates else []
    chosen: list[_Span] = []
    for span in candidates:
        if any(span.start < c.end and c.start < span.end for c in chosen):
            continue
        unlabelled_number = not span.keep_prefix and span.kind not in ("EMAIL", "IBAN")
        if unlabelled_number and any(span.start < e and s < span.end for s, e in protected):
            continue
        chosen.append(span)
    counts: Counter[str] = Counter()
    out, last = [], 0
    for span in sorted(chosen, key=lambda s: s.start):
        out.append(text[last : span.start] + span.keep_prefix + f"[{span.kind}]")
        counts[span.kind] += 1
        last = span.end
    out.append(text[last:])
    return MaskResult("".join(out), counts)


def mask_pii(text: str) -> str:
    """`text` with personal data replaced by `[KIND]` placeholders (see `mask_pii_report`)."""
    return mask_pii_report(text).text
