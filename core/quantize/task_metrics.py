"""Task metrics for the quantization report: exact-match accuracy for classification-style answers, ROUGE-L else."""

from __future__ import annotations

import re

from core.errors import ValidationError

METRICS = ("auto", "exact_match", "rouge_l")
# Answers this short, drawn from this few distinct values, are labels (e.g. "Risk level: 3"), not free text.
LABEL_MAX_WORDS = 6
LABEL_MAX_DISTINCT = 20


def normalize_answer(text: str) -> str:
    """First non-empty line, lower case, single spaces, no trailing punctuation: the parsed answer."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return re.sub(r"\s+", " ", first).strip().lower().rstrip(".;,!")


def choose_metric(metric: str, references: list[str]) -> str:
    """Resolve "auto": exact_match when the references look like a small label set, else rouge_l.

    Raises:
        ValidationError: an unknown metric name.
    """
    if metric not in METRICS:
        raise ValidationError(f"unknown metric '{metric}': choose one of {', '.join(METRICS)}")
    if metric != "auto":
        return metric
    short = all(len(r.split()) <= LABEL_MAX_WORDS for r in references)
    few = len({normalize_answer(r) for r in references}) <= LABEL_MAX_DISTINCT
    return "exact_match" if short and few else "rouge_l"


def score(metric: str, predictions: list[str], references: list[str]) -> float:
    """Mean score in [0, 1] of predictions against references under `metric` ("exact_match" or "rouge_l")."""
    if not references:
        return 0.0
    if metric == "exact_match":
        hits = sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references, strict=True))
        return hits / len(references)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    values = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]
    return sum(values) / len(values)
