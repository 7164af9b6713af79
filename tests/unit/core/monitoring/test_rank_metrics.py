"""Rank 0's row combines every rank: tokens and tokens/s summed over the ranks that count them, peak memory the
largest; gradient health of pipeline stages adds up to the whole model's."""

from __future__ import annotations

import pytest
import torch

from core.monitoring.gradient_health import gradient_health, gradient_squares, health_of
from core.monitoring.rank_metrics import RankStep, combine


def test_combine_sums_throughput_and_takes_the_largest_memory() -> None:
    row = combine([RankStep(0, 100, 0.5, 300.0), RankStep(1, 60, 0.25, 420.0)])
    assert row["tokens"] == 160
    assert row["tokens_per_s"] == pytest.approx(200 + 240)
    assert row["step_time_s"] == 0.5
    assert (row["peak_mem_mb"], row["peak_mem_mb_per_rank"], row["world_size"]) == (420.0, [300.0, 420.0], 2)


def test_tensor_parallel_ranks_count_their_tokens_once() -> None:
    row = combine([RankStep(0, 100, 0.5, 1.0), RankStep(1, 100, 0.5, 1.0, counts_tokens=False)])
    assert (row["tokens"], row["tokens_per_s"]) == (100, pytest.approx(200))


def test_stage_health_adds_up_to_the_whole() -> None:
    torch.manual_seed(0)
    named = []
    for name in ("model.embed_tokens.weight", "model.layers.0.mlp.weight", "model.layers.1.mlp.weight", "lm_head.w"):
        param = torch.nn.Parameter(torch.randn(3, 3))
        param.grad = torch.randn(3, 3)
        named.append((name, param))
    whole = gradient_health(named)
    staged = health_of([gradient_squares(named[:2]), gradient_squares(named[2:])])
    assert staged.total_norm == pytest.approx(whole.total_norm)
    assert staged.layer_norms == pytest.approx(whole.layer_norms)
    assert staged.vanishing_ratio == pytest.approx(whole.vanishing_ratio)
