"""Mask personal data (emails, phones, card numbers, IBANs, national IDs, labelled names) before it is stored.

Regular expressions are hand-written here because the maintained PII libraries (Presidio, scrubadub) pull in
spaCy models that must be downloaded at run time, which finmed does not allow. The data-filtering issue extends
this module (more identifier kinds, per-locale patterns, an NER pass when a local model is available); keep the
`mask_pii` signature and the `[KIND]` placeholders stable, because stored review items and training records rely
on them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# 13-19 digits, optionally grouped by single spaces or dashes; confirmed by the Luhn checksum below.
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
# National-ID-like numbers: US SSN (123-45-6789), UK NINO (AB123456C); labelled IDs are handled by LABELLED_ID.
NATIONAL_ID = re.compile(r"\b\d{3}-\d{2}-\d{4}\b|\b[A-CEGHJ-PR-TW-Z]{2}\d{6}[A-D]\b")
LABELLED_ID = re.compile(
    r"(?P<label>\b(?:SSN|MRN|NIN|National ID|ID|Passport)(?:\s*(?:no\.?|number|#))?\s*[:#]?\s*)"
    r"(?P<value>[A-Z0-9][A-Z0-9-]{4,19})\b",
    re.IGNORECASE,
)
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?![\w])")
# A name after a label: "Patient: Jane Q. Doe", "Name: O'Brien, Mary".
_NAME_WORD = r"(?:[A-Z](?:[a-z]*['’-][A-Z])?[a-z]+|[A-Z]\.)"
NAME = re.compile(
    r"(?P<label>\b(?:Patient|Name|Patient name|Customer|Account holder)\s*:\s*)"
    rf"(?P<name>{_NAME_WORD}(?:,?[ ]+{_NAME_WORD}){{0,3}})"
)

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("EMAIL", EMAIL),
    ("IBAN", IBAN),
    ("CARD", CARD),
    ("NATIONAL_ID", NATIONAL_ID),
    ("PHONE", PHONE),
)


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (every valid payment card number does)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    """ISO 13616 mod-97 check, so that product codes that merely look like an IBAN stay visible."""
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def _phone_ok(span: str, digits: str) -> bool:
    """7-15 digits (E.164), written with a `+`, parentheses or separators, and not a date."""
    if not 7 <= len(digits) <= 15 or DATE_LIKE.match(span):
        return False
    return span.startswith("+") or "(" in span or bool(re.search(r"\d[ .-]\d", span))


@dataclass
class MaskResult:
    """Masked text and how many spans of each kind were replaced."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)


def mask_pii_report(text: str) -> MaskResult:
    """Replace personal data in `text` with `[KIND]` placeholders and count what was replaced.

    Kinds: EMAIL, IBAN (mod-97 checked), CARD (Luhn checked), NATIONAL_ID, PHONE (at least 7 digits), NAME (only
    after a `Patient:`/`Name:`-style label). Order matters: longer identifiers are masked before phones so a card
    number is never half-masked as a phone.
    """
    counts: Counter[str] = Counter()

    def sub_name(m: re.Match[str]) -> str:
        counts["NAME"] += 1
        return m.group("label") + "[NAME]"

    def sub_id(m: re.Match[str]) -> str:
        if not any(ch.isdigit() for ch in m.group("value")):
            return m.group(0)
        counts["NATIONAL_ID"] += 1
        return m.group("label") + "[NATIONAL_ID]"

    out = LABELLED_ID.sub(sub_id, NAME.sub(sub_name, text))
    for kind, pattern in PATTERNS:

        def sub(m: re.Match[str], kind: str = kind) -> str:
            span = m.group(0)
            digits = re.sub(r"\D", "", span)
            if kind == "CARD" and not luhn_ok(digits):
                return span
            if kind == "IBAN" and not _iban_ok(span):
                return span
            if kind == "PHONE" and not _phone_ok(span, digits):
                return span
            counts[kind] += 1
            return f"[{kind}]"

        out = pattern.sub(sub, out)
    return MaskResult(out, counts)


def mask_pii(text: str) -> str:
    """`text` with personal data replaced by `[KIND]` placeholders (see `mask_pii_report`)."""
    return mask_pii_report(text).text
