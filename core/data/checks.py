"""The seam through which a domain gives the data filter its checks and vocabularies (`DomainPlugin.data`).

Core runs the tiers; a domain says what "consistent" (tier 2) and "known to the field" (tier 3) mean for its
records, which spans of a record augmentation may rewrite, and which terms may replace each other without changing
the label. Core never imports a domain: it reads these objects from the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from core.data.records import Record


@dataclass(frozen=True)
class Problem:
    """What a check found in one record.

    Attributes:
        code: the reason code, stable and documented in `DataChecks.reason_codes` (e.g. "reason_unsupported").
        detail: one line for a person (which field, which value, what it should be).
        drop: True drops the record; False keeps it and flags it (e.g. a check that cannot run here).
    """

    code: str
    detail: str
    drop: bool = True


RecordCheck = Callable[[Record], Iterable[Problem]]


@dataclass(frozen=True)
class TermGroup:
    """Terms that may replace each other in a record without changing its label.

    Attributes:
        terms: the interchangeable surface forms (first one is the preferred name).
        relation: "synonym" (same concept) or "sibling" (same parent category, label-neutral for this domain).
        source: the vocabulary it comes from (e.g. "radiology-semantic-dict", "ISO 18245 MCC groups").
    """

    terms: tuple[str, ...]
    relation: str = "synonym"
    source: str = ""


@dataclass(frozen=True)
class TextSpan:
    """A stretch of one message that augmentation may rewrite: messages[message].content[start:end]."""

    message: int
    start: int
    end: int


@dataclass(frozen=True)
class DataChecks:
    """A domain's contribution to `finmed data filter` / `finmed data augment`.

    Attributes:
        semantic: tier-2 checks (the answer agrees with the input).
        knowledge: tier-3 checks (codes and terms are real).
        reason_codes: every code the checks can emit -> what it means (shown in report.json).
        vocabulary: builds the substitution vocabulary (called once, lazily; loading it may take a second).
        free_text: the spans of a record that back-translation may paraphrase (default: the last user message).
        languages: expected ISO 639-1 languages of records (tier 1 rejects others).
    """

    semantic: tuple[RecordCheck, ...] = ()
    knowledge: tuple[RecordCheck, ...] = ()
    reason_codes: Mapping[str, str] = field(default_factory=dict)
    vocabulary: Callable[[], list[TermGroup]] | None = None
    free_text: Callable[[Record], list[TextSpan]] | None = None
    languages: tuple[str, ...] = ("en", "zh")


def last_user_span(record: Record) -> list[TextSpan]:
    """The default free text: all of the last user message."""
    for i in range(len(record.messages) - 1, -1, -1):
        if record.messages[i].role == "user":
            return [TextSpan(i, 0, len(record.messages[i].content))]
    return []
