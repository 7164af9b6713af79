"""Gradient health of a training step: norm per layer and a gradient vanishing index.

The vanishing index has two parts:
* ``vanishing_ratio`` = grad norm of the lowest trainable decoder layer / grad norm of the highest one
  (None when fewer than two decoder layers have trainable weights, e.g. prompt tuning). Values far below 1 mean
  the signal fades on its way down the stack.
* ``tiny_grad_share`` = share of trainable tensors whose grad norm is below 1e-8 (a missing grad counts as 0).

Under data parallel every rank holds the same (all-reduced) gradients; sharded gradients (FSDP, tensor parallel)
are gathered whole; pipeline stages each measure their own parameters and `health_of` adds the parts up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

TINY = 1e-8
_LAYER = re.compile(r"\blayers\.(\d+)\.")


def group_of(name: str) -> str:
    """The group a parameter reports under: 'layer_<i>' for decoder layer i, else embed/prompt/head/norm/other."""
    match = _LAYER.search(name)
    if match:
        return f"layer_{int(match.group(1))}"
    if "prompt_encoder" in name or "prompt_embeddings" in name:
        return "prompt"
    if "embed_tokens" in name:
        return "embed"
    if "lm_head" in name:
        return "head"
    if "norm" in name:
        return "norm"
    return "other"


@dataclass
class GradientHealth:
    """What one step's gradients look like."""

    total_norm: float
    layer_norms: dict[str, float] = field(default_factory=dict)
    vanishing_ratio: float | None = None
    tiny_grad_share: float = 0.0

    @property
    def finite(self) -> bool:
        """False when any gradient is NaN or infinite."""
        return math.isfinite(self.total_norm)


@dataclass
class GradientSquares:
    """Sums of squared gradient norms per group, summable over ranks that hold different parameters (pipeline
    stages); `gradient_health` is computed from one or several of them."""

    squares: dict[str, float] = field(default_factory=dict)
    tiny: int = 0
    count: int = 0


def gradient_squares(params: Iterable[tuple[str, nn.Parameter]]) -> GradientSquares:
    """Squared grad norms of `params` per group (call after backward). A sharded (DTensor) gradient is gathered
    whole first, so every rank of a sharded model measures the same numbers."""
    out = GradientSquares()
    for name, param in params:
        out.count += 1
        grad = param.grad
        if grad is not None and hasattr(grad, "full_tensor"):
            grad = grad.full_tensor()
        norm = 0.0 if grad is None else float(torch.linalg.vector_norm(grad.detach().float()))
        if norm < TINY:
            out.tiny += 1
        group = group_of(name)
        out.squares[group] = out.squares.get(group, 0.0) + norm * norm
    return out


def health_of(parts: Iterable[GradientSquares]) -> GradientHealth:
    """Gradient health of the union of `parts` (one per rank holding distinct parameters, or just one)."""
    squares: dict[str, float] = {}
    tiny = count = 0
    for part in parts:
        tiny, count = tiny + part.tiny, count + part.count
        for group, value in part.squares.items():
            squares[group] = squares.get(group, 0.0) + value
    total_sq = sum(squares.values())
    norms = {group: math.sqrt(value) for group, value in squares.items()}
    layers = sorted((int(g.split("_")[1]), v) for g, v in norms.items() if g.startswith("layer_"))
    ratio = None
    if len(layers) >= 2 and math.isfinite(layers[-1][1]):
        ratio = layers[0][1] / layers[-1][1] if layers[-1][1] > 0 else 0.0
    ordered = dict(sorted(norms.items(), key=lambda kv: (not kv[0].startswith("layer_"), _order(kv[0]))))
    return GradientHealth(math.sqrt(total_sq), ordered, ratio, tiny / count if count else 0.0)


def gradient_health(params: Iterable[tuple[str, nn.Parameter]]) -> GradientHealth:
    """Measure the gradients stored on `params` (the optimizer's named parameters; call after backward)."""
    return health_of([gradient_squares(params)])


def _order(group: str) -> tuple[int, str]:
    return (int(group.split("_")[1]), "") if group.startswith("layer_") else (0, group)
