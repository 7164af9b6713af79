"""The answer a labelled transaction should get: level and reasons from the fraud label and the rule reasons.

Used for training records (make-training) and few-shot examples, so both teach the same mapping:
fraud -> level 3 plus one per fired reason (at most 5), basis = the fired reasons;
legitimate -> level = number of fired reasons, at most 2 (unusual but fine), basis = the fired reasons.
"""

from __future__ import annotations


def target_for(is_fraud: int, reasons: list[str]) -> tuple[int, list[str]]:
    """(level 0-5, reasons) for a labelled transaction."""
    if is_fraud:
        return min(5, 3 + len(reasons)), list(reasons)
    return min(2, len(reasons)), list(reasons)
