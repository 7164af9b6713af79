"""Relative-score fusion of a vector and a keyword result list: what `alpha` means in hybrid search.

Hand-written (about twenty lines) because LanceDB's built-in hybrid normalisation maps a leg whose scores are all
equal (for example a single keyword match) to 0, so a lone exact keyword hit would count as no match at all;
Weaviate's relativeScoreFusion scores it 1. Fusing here keeps both backends meaning the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.retrieval.schema import Hit


def _normalised(hits: Sequence[Hit]) -> dict[str, float]:
    """Min-max scale scores to [0, 1] (best 1); a list whose scores are all equal scores 1 everywhere."""
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    if high == low:
        return {h.id: 1.0 for h in hits}
    return {h.id: (h.score - low) / (high - low) for h in hits}


def relative_score_fusion(
    vector_hits: Sequence[Hit], keyword_hits: Sequence[Hit], *, alpha: float, limit: int
) -> list[Hit]:
    """alpha * normalised vector score + (1 - alpha) * normalised keyword score; missing from a list counts 0.

    Ties keep the order vector hits first, then keyword-only hits, each best first.
    """
    vec, kw = _normalised(vector_hits), _normalised(keyword_hits)
    by_id = {h.id: h for h in [*vector_hits, *keyword_hits]}
    fused = {i: alpha * vec.get(i, 0.0) + (1 - alpha) * kw.get(i, 0.0) for i in by_id}
    order = sorted(by_id, key=lambda i: -fused[i])
    return [Hit(i, by_id[i].text, fused[i], by_id[i].metadata) for i in order[:limit]]
