"""The finance prompt on the real default model: it fits, each level digit is one token, the finance LoRA config
applies to its layers, and the expected level is a usable number. Whether the fine-tuned adapter helps is measured
by bench/finance.py (it trains for minutes, longer than a test may take)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.finetune.config import load_config
from core.finetune.methods import apply_method, count_parameters
from domains.finance.features import compute_features, reasons_for
from domains.finance.llm import LocalLLM, expected_level
from domains.finance.pipeline import CascadePolicy, prompts_for
from domains.finance.synthetic import generate

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.slow
def test_risk_prompt_on_the_default_model(default_model_dir: Path) -> None:
    frame = generate(5, seed=3, days=5, fraud_rate=0.5)
    feats = compute_features(frame)
    rows = frame.join(feats.drop(columns=[c for c in feats.columns if c in frame.columns])).head(4)
    llm = LocalLLM(str(default_model_dir), batch_size=4)
    assert llm.digit_ids is not None
    prompts = prompts_for(rows, reasons_for(feats.head(4)), llm, None, CascadePolicy())
    assert all(p.endswith("assistant\nRisk level: ") for p in prompts)
    assert max(len(llm.tokenizer(p)["input_ids"]) for p in prompts) < 320  # configs/finance-lora.yaml max_length
    probs = llm.level_probs(prompts)
    assert probs.shape == (4, 6) and np.allclose(probs.sum(axis=1), 1.0)
    assert np.all((expected_level(probs) >= 0) & (expected_level(probs) <= 5))
    config = load_config(REPO / "configs" / "finance-lora.yaml", [f"model.base={default_model_dir}"])
    adapted = apply_method(llm.model, config.method, tokenizer_path=str(default_model_dir), total_steps=10)
    trainable, total = count_parameters(adapted)
    assert 0.005 < trainable / total < 0.02  # LoRA on the top 12 of 30 layers
