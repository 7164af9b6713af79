"""Knowledge-graph substitution: replace one vocabulary term of a record by another of its group, everywhere.

The domain's vocabulary (`DataChecks.vocabulary`) holds groups of terms that may stand for each other without
changing the label (synonyms; siblings the label does not depend on). The same replacement is made in every
non-system turn, answer included, so findings and impression, or description and basis, stay in step; the
augmented record still re-passes the whole filter. Choices are seeded by the record's content, so the same input
and seed give the same output.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from core.data.checks import TermGroup
from core.data.records import Message, Record


@dataclass(frozen=True)
class Substitution:
    """One replacement: `old` became `new` (from `group`)."""

    old: str
    new: str
    relation: str
    source: str


class Substituter:
    """Finds vocabulary terms in a record and makes label-neutral variants."""

    def __init__(self, groups: list[TermGroup]) -> None:
        self.groups = groups
        self.by_term: dict[str, TermGroup] = {}
        for group in groups:
            for term in group.terms:
                self.by_term.setdefault(term.lower(), group)
        terms = sorted(self.by_term, key=len, reverse=True)  # longest first: "pleural effusion" before "effusion"
        self.pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(t) for t in terms) + r")(?![\w-])", re.I)

    def terms_in(self, record: Record) -> list[str]:
        """Vocabulary terms found in the record's non-system turns (lower-cased, first occurrence order)."""
        found: dict[str, None] = {}
        for m in record.messages:
            if m.role != "system":
                for match in self.pattern.finditer(m.content):
                    found.setdefault(match.group(1).lower(), None)
        return list(found)

    def variants(self, record: Record, n: int, seed: int = 0) -> list[tuple[Record, Substitution]]:
        """Up to `n` distinct variants, each replacing one term (all its occurrences) by another of its group."""
        key = "\x1f".join(m.content for m in record.messages) + f"\x1e{seed}"
        rng = random.Random(hashlib.sha256(key.encode("utf-8")).digest())
        options = [(t, alt) for t in self.terms_in(record) for alt in self.by_term[t].terms if alt.lower() != t]
        rng.shuffle(options)
        out = []
        for term, alternative in options[:n]:
            group = self.by_term[term]
            regex = re.compile(r"(?<![\w-])" + re.escape(term) + r"(?![\w-])", re.I)

            def repl(m: re.Match[str], alternative: str = alternative) -> str:
                return alternative[:1].upper() + alternative[1:] if m.group(0)[:1].isupper() else alternative

            messages = tuple(
                m if m.role == "system" else Message(m.role, regex.sub(repl, m.content)) for m in record.messages
            )
            out.append((Record(messages, record.meta), Substitution(term, alternative, group.relation, group.source)))
        return out
