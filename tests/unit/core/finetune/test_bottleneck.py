"""Bottleneck adapters: identity at start, placed after attention and MLP, only they train, save/load exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.finetune.bottleneck import BottleneckLinear, inject_adapters, load_adapters, save_adapters
from core.models.tiny import build_tiny_model


def _ids() -> torch.Tensor:
    return torch.tensor([[5, 17, 40, 99, 120, 7]])


def test_injection_is_identity_and_freezes_the_base() -> None:
    model, _ = build_tiny_model(seed=2)
    with torch.no_grad():
        before = model(input_ids=_ids()).logits
    wrapped = inject_adapters(model, size=8)
    assert wrapped == [f"model.layers.{i}.{m}" for i in range(2) for m in ("self_attn.o_proj", "mlp.down_proj")]
    assert all(isinstance(model.get_submodule(name), BottleneckLinear) for name in wrapped)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=_ids()).logits, before, rtol=0, atol=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapter_" in n for n in trainable)
    assert len(trainable) == 4 * 4  # 4 wrapped layers x (down, up) x (weight, bias)


def test_save_and_load_give_identical_logits(tmp_path: Path) -> None:
    model, _ = build_tiny_model(seed=2)
    inject_adapters(model, size=8, activation="gelu")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".adapter_" in name:
                p.normal_(0, 0.1)
        expected = model(input_ids=_ids()).logits
    save_adapters(model, tmp_path / "adapter")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} == {"adapter_model.safetensors", "adapter_config.json"}
    fresh, _ = build_tiny_model(seed=2)
    load_adapters(fresh, tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=_ids()).logits, expected, rtol=0, atol=0)


def test_model_without_targets_is_refused() -> None:
    with pytest.raises(ValueError, match="adapter layers need a Llama-like model"):
        inject_adapters(torch.nn.Sequential(torch.nn.Linear(4, 4)), size=2)
