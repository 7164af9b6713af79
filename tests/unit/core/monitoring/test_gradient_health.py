"""Gradient health: per-layer norms, the vanishing index, non-finite detection; metrics land in jsonl and .prom."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from core.monitoring.gradient_health import gradient_health, group_of
from core.monitoring.training_metrics import TrainingMetrics


def _param(grad: list[float] | None) -> nn.Parameter:
    p = nn.Parameter(torch.zeros(len(grad) if grad else 2))
    p.grad = None if grad is None else torch.tensor(grad)
    return p


def test_groups() -> None:
    assert group_of("base_model.model.model.layers.12.self_attn.q_proj.lora_A.default.weight") == "layer_12"
    assert group_of("prompt_encoder.default.embedding.weight") == "prompt"
    assert group_of("model.embed_tokens.weight") == "embed"


def test_vanishing_index_and_tiny_share() -> None:
    params = [
        ("model.layers.0.a", _param([3.0, 4.0])),  # norm 5
        ("model.layers.0.b", _param([0.0, 0.0])),  # tiny
        ("model.layers.1.a", _param([6.0, 8.0])),  # norm 10
        ("model.layers.2.a", _param([0.0, 20.0])),  # norm 20: the highest layer
        ("model.layers.2.b", _param(None)),  # no gradient counts as tiny
    ]
    health = gradient_health(params)
    assert health.layer_norms == {"layer_0": 5.0, "layer_1": 10.0, "layer_2": 20.0}
    assert health.vanishing_ratio == 0.25
    assert health.tiny_grad_share == 2 / 5
    assert math.isclose(health.total_norm, math.sqrt(25 + 100 + 400))
    assert health.finite


def test_non_finite_and_single_layer() -> None:
    health = gradient_health([("model.layers.0.a", _param([float("nan"), 1.0]))])
    assert not health.finite and health.vanishing_ratio is None


def test_metrics_written_to_jsonl_and_textfile(tmp_path: Path) -> None:
    sink = TrainingMetrics(tmp_path, "run-a")
    row = {"step": 1, "loss": 2.5, "lr": 1e-3, "layer_grad_norm": {"layer_0": 0.5}, "vanishing_ratio": 0.1}
    sink.log(row)
    sink.log({**row, "step": 2, "loss": 2.0})
    assert [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [2.5, 2.0]
    prom = (tmp_path / "metrics.prom").read_text()
    assert 'finmed_train_loss{run="run-a"} 2.0' in prom
    assert 'finmed_train_layer_grad_norm{layer="layer_0",run="run-a"} 0.5' in prom
    sink.truncate_after(1)
    assert len(sink.rows()) == 1
