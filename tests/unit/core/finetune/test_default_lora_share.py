"""LoRA with the seed defaults on the real default base model trains 0.1-1% of the parameters (counting only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.finetune.config import LoraMethod
from core.finetune.methods import apply_method, count_parameters


@pytest.mark.slow
def test_default_lora_share(default_model_dir: Path) -> None:
    from core.models.resolve import ModelRef, load_causal_lm

    model, _ = load_causal_lm(ModelRef("default", str(default_model_dir), "default"))
    model = apply_method(model, LoraMethod(), tokenizer_path=str(default_model_dir), total_steps=10)
    trainable, total = count_parameters(model)
    assert trainable == 30 * 2 * 16 * (576 + 576) - 30 * 16 * (576 - 192)  # q: 576->576, v: 576->192 per layer
    assert 0.001 <= trainable / total <= 0.01, trainable / total
