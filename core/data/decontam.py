"""Decontamination: drop training records whose word n-grams overlap an evaluation set (`--against eval.jsonl`).

As in the decontamination steps of datatrove and NeMo Curator, a record is contaminated when it shares n-grams
with an evaluation record; here the share is measured, not any single hit, because domain records share template
phrases: a record is dropped when at least `threshold` of its n-grams occur in the evaluation set after removing
the evaluation set's own boilerplate (n-grams in more than half of its records, when it has several). The
evaluation set is held in memory (evaluation sets are small); training records stream.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from core.data.dedup import normalise
from core.data.records import Record, parse_record
from core.data.syntax import record_text
from core.errors import NotFoundError, ValidationError

NGRAM = 8
REASON = {"eval_overlap": "shares at least --overlap of its word 8-grams with a record of the --against set"}


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    """Word n-grams of the normalised text (the whole text when it is shorter than n words)."""
    tokens = normalise(text)
    if len(tokens) < n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class Decontaminator:
    """The evaluation set's n-grams, and the overlap test for a training record."""

    def __init__(self, against: Path, threshold: float = 0.5, n: int = NGRAM) -> None:
        against = Path(against)
        if not against.is_file():
            raise NotFoundError(f"--against {against}: no such evaluation file")
        self.n, self.threshold = n, threshold
        df: Counter[str] = Counter()
        records = 0
        with against.open(encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = parse_record(json.loads(line), f"{against.name} line {number}")
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise ValidationError(f"--against {against.name} line {number}: not a record ({exc})") from None
                df.update(ngrams(record_text(record), n))
                records += 1
        if records == 0:
            raise ValidationError(f"--against {against}: the evaluation file has no records")
        limit = records / 2 if records > 2 else records + 1
        self.grams = {g for g, c in df.items() if c <= limit}
        self.records = records

    def overlap(self, record: Record) -> float:
        """Share of the record's n-grams found in the evaluation set (0..1)."""
        grams = ngrams(record_text(record), self.n)
        return len(grams & self.grams) / len(grams) if grams else 0.0
