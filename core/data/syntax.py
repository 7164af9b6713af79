"""Tier 1 of the data filter, format and syntax: bytes -> a valid, repaired, masked record, or the reason why not.

Steps, in order: size bound, binary content, UTF-8, JSON, the record shape (core.data.records), mojibake repair
(ftfy), length bounds in tokens of the target tokenizer, language (core.data.language), PII masking
(core.data.pii). Duplicates (core.data.dedup) are the tier's last step, on the repaired and masked text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import ftfy

from core.data.checks import Problem
from core.data.language import detect_language
from core.data.pii import mask_pii_report
from core.data.records import Message, Record, parse_record
from core.errors import ValidationError

REASONS = {
    "too_large": "the line is longer than the byte limit (--max-bytes); it was not read into memory",
    "binary_data": "the line holds NUL or other control bytes: a binary file, not JSONL text",
    "not_utf8": "the line is not valid UTF-8 (wrong encoding); re-encode the file as UTF-8",
    "bad_json": "the line is not valid JSON (e.g. truncated)",
    "bad_record": "valid JSON but not a training record (missing or wrong fields; see core/data/records.py)",
    "too_short": "fewer tokens than --min-tokens in prompt + answer",
    "too_long": "more tokens than --max-tokens in the rendered conversation (target tokenizer)",
    "wrong_language": "the detected language is not one of the domain's expected languages",
    "exact_duplicate": "same text (case, spacing and punctuation aside) as an earlier kept record",
    "near_duplicate": "MinHash LSH: Jaccard similarity of word 3-grams with an earlier kept record above --near-dup",
}
REPAIRS = {
    "mojibake_repaired": "text repaired by ftfy (mojibake, broken escapes); kept",
    "pii_masked": "personal data replaced by [KIND] placeholders; kept",
}
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 13))


@dataclass(frozen=True)
class SyntaxOptions:
    """Tier-1 bounds.

    Attributes:
        max_bytes: longest line read (longer lines are rejected unread).
        min_tokens / max_tokens: bounds on prompt + answer tokens.
        languages: expected ISO 639-1 codes; empty accepts any.
        near_dup: MinHash LSH Jaccard threshold.
    """

    max_bytes: int = 1_000_000
    min_tokens: int = 2
    max_tokens: int = 4096
    languages: tuple[str, ...] = ("en", "zh")
    near_dup: float = 0.9


@dataclass
class Parsed:
    """A record that passed tier 1's per-line steps, with what was repaired and masked."""

    record: Record
    repairs: list[str] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)


def record_text(record: Record) -> str:
    """The text that identifies a record: every non-system turn (the system prompt is shared boilerplate)."""
    return "\n".join(m.content for m in record.messages if m.role != "system")


def _fix_uncached(content: str) -> tuple[str, bool, tuple[tuple[str, int], ...]]:
    # ASCII text without entities, escapes or carriage returns has nothing ftfy would change: skip it (fast path)
    plain = content.isascii() and not any(ch in content for ch in "&\\\r\x1b")
    fixed = content if plain else ftfy.fix_text(content, normalization="NFC")
    masked = mask_pii_report(fixed)
    return masked.text, fixed != content, tuple(masked.counts.items())


@lru_cache(maxsize=64)
def _fix_repeated(content: str) -> tuple[str, bool, tuple[tuple[str, int], ...]]:
    """`_fix_uncached`, cached: system prompts repeat on every record."""
    return _fix_uncached(content)


def _fix(record: Record) -> tuple[Record, bool, dict[str, int]]:
    messages, repaired, pii = [], False, {}
    for m in record.messages:
        text, changed, counts = _fix_repeated(m.content) if m.role == "system" else _fix_uncached(m.content)
        repaired = repaired or changed
        for kind, n in counts:
            pii[kind] = pii.get(kind, 0) + n
        messages.append(Message(m.role, text))
    return Record(tuple(messages), record.meta), repaired, pii


def parse_line(
    raw: bytes, where: str, options: SyntaxOptions, count_tokens: Callable[[Record], int]
) -> Parsed | Problem:
    """Tier 1's per-line steps on one raw line (without its newline). See the module docstring."""
    if len(raw) > options.max_bytes:
        return Problem("too_large", f"{len(raw):,} bytes or more; limit {options.max_bytes:,}")
    bad = next((b for b in raw if b in _CONTROL), None)
    if bad is not None:
        return Problem("binary_data", f"control byte 0x{bad:02x} at offset {raw.index(bad)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Problem("not_utf8", f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8 ({exc.reason})")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem("bad_json", f"{exc.msg} at column {exc.colno}")
    try:
        record = parse_record(obj, where)
    except ValidationError as exc:
        return Problem("bad_record", str(exc))
    record, repaired, pii = _fix(record)
    tokens = count_tokens(record)
    if tokens < options.min_tokens:
        return Problem("too_short", f"{tokens} tokens; at least {options.min_tokens}")
    if tokens > options.max_tokens:
        return Problem("too_long", f"{tokens} tokens; at most {options.max_tokens}")
    if options.languages:
        language = detect_language(record_text(record))
        if language is not None and language not in options.languages:
            return Problem("wrong_language", f"detected {language}; expected {', '.join(options.languages)}")
    return Parsed(record, ["mojibake_repaired"] if repaired else [], pii)
