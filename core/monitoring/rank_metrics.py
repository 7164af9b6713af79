"""One step's throughput and memory from every rank, combined into the row rank 0 writes.

Tokens and tokens/s add up over data-parallel ranks (each processed its own shard); in tensor or pipeline parallel
every rank of a model replica works on the same tokens, so only one rank per replica counts them. Peak memory is
the largest of any rank, with the per-rank values kept beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RankStep:
    """What one rank measured in one optimizer step."""

    rank: int
    tokens: int
    step_time_s: float
    peak_mem_mb: float
    counts_tokens: bool = True  # False on the ranks of a replica other than the one that reports its tokens


def combine(parts: list[RankStep]) -> dict[str, Any]:
    """The metrics-row fields of one step from all ranks' measurements (rank order)."""
    counted = [p for p in parts if p.counts_tokens]
    return {
        "tokens": sum(p.tokens for p in counted),
        "step_time_s": max(p.step_time_s for p in parts),
        "tokens_per_s": sum(p.tokens / p.step_time_s for p in counted if p.step_time_s > 0),
        "peak_mem_mb": max(p.peak_mem_mb for p in parts),
        "peak_mem_mb_per_rank": [p.peak_mem_mb for p in parts],
        "world_size": len(parts),
    }


def as_dict(part: RankStep) -> dict[str, Any]:
    """A picklable form (for all_gather_object)."""
    return asdict(part)
