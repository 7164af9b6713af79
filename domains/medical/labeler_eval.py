"""Measures the finding labeler against hand-labelled sentences: precision and recall per finding and per status,
exact-match share per kind of sentence, and the disagreements, for bench/medical.py and its tests.

The labels are compared as (sentence, finding, status) triples: the labeler's triple is a true positive when the
hand label of that finding in that sentence has the same status; a labelled finding with another status counts
against the labeler's status (a false positive) and against the hand label's (a false negative); a finding the
labeler finds but the hand labels leave out is a false positive, and the reverse a false negative.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFoundError, ValidationError
from domains.medical.labeler import FINDINGS, label_report

STATUSES = ("present", "uncertain", "absent")


@dataclass(frozen=True)
class GoldSentence:
    """One hand-labelled sentence: id, kind of phrasing (negation, hedge, ...), text, finding -> status, and its
    split ("dev": seen while the labeler was mended; "held_out": written before and never used to mend it)."""

    id: str
    kind: str
    text: str
    labels: dict[str, str]
    split: str = "dev"


def load_gold(path: Path) -> list[GoldSentence]:
    """Read a gold JSONL file ({"id", "kind", "text", "labels"} and optionally "split" per line).

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: a line that is not such an object, an unknown finding or status, a repeated id
            (named by line).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"gold labels {path} do not exist")
    out: list[GoldSentence] = []
    ids: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            item = GoldSentence(
                str(row["id"]), str(row["kind"]), str(row["text"]), dict(row["labels"]), str(row.get("split", "dev"))
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"{path}:{n}: expected {{id, kind, text, labels}} ({exc})") from None
        bad = {f: s for f, s in item.labels.items() if f not in FINDINGS or s not in STATUSES}
        if bad:
            raise ValidationError(f"{path}:{n}: unknown finding or status {bad}; findings are {', '.join(FINDINGS)}")
        if item.id in ids:
            raise ValidationError(f"{path}:{n}: id {item.id} repeated")
        ids.add(item.id)
        out.append(item)
    return out


def _pr(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    return {
        "support": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
    }


def score_labels(gold: list[GoldSentence], label: Callable[[str], dict[str, str]] = label_report) -> dict[str, object]:
    """Compare `label(sentence)` with the hand labels.

    Returns:
        {"n_sentences", "exact_match" (share of sentences labelled exactly as by hand), "micro" (precision/recall
        over all triples), "by_finding" and "by_status" ({name: {support, precision, recall}}, names with any
        count), "by_kind" ({kind: {n, exact_match}}), "disagreements" ([{id, kind, text, gold, labeler}] in file
        order)}.
    """
    tp: Counter[tuple[str, str]] = Counter()
    fp: Counter[tuple[str, str]] = Counter()
    fn: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    exact: Counter[str] = Counter()
    disagreements = []
    for item in gold:
        got = label(item.text)
        kinds[item.kind] += 1
        if got == item.labels:
            exact[item.kind] += 1
        else:
            disagreements.append({"id": item.id, "kind": item.kind, "text": item.text, "gold": item.labels,
                                  "labeler": got})  # fmt: skip
        for finding in set(item.labels) | set(got):
            want, have = item.labels.get(finding), got.get(finding)
            if want is not None and want == have:
                tp[(finding, want)] += 1
                continue
            if have is not None:
                fp[(finding, have)] += 1
            if want is not None:
                fn[(finding, want)] += 1

    def total(counter: Counter[tuple[str, str]], index: int, name: str) -> int:
        return sum(v for k, v in counter.items() if k[index] == name)

    keys = set(tp) | set(fp) | set(fn)
    by_finding = {f: _pr(total(tp, 0, f), total(fp, 0, f), total(fn, 0, f)) for f in FINDINGS
                  if any(k[0] == f for k in keys)}  # fmt: skip
    by_status = {s: _pr(total(tp, 1, s), total(fp, 1, s), total(fn, 1, s)) for s in STATUSES}
    return {
        "n_sentences": len(gold),
        "exact_match": sum(exact.values()) / len(gold) if gold else 0.0,
        "micro": _pr(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "by_finding": by_finding,
        "by_status": by_status,
        "by_kind": {k: {"n": n, "exact_match": exact[k] / n} for k, n in kinds.items()},
        "disagreements": disagreements,
    }
