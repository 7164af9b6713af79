"""Model resolution, the tiny model factory, and the real default model (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import NotFoundError, SettingsError
from core.models.info import model_info
from core.models.resolve import load_causal_lm, resolve_model
from core.models.tiny import build_tiny_model


def test_tiny_model_is_deterministic_and_chat_ready() -> None:
    model_a, tokenizer = build_tiny_model(seed=3)
    model_b, _ = build_tiny_model(seed=3)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Risk level?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        logits_a = model_a(ids).logits  # (1, seq, vocab)
        logits_b = model_b(ids).logits
    assert logits_a.shape == (1, ids.shape[1], len(tokenizer))
    assert torch.equal(logits_a, logits_b)
    assert tokenizer.decode(ids[0]).endswith("<|im_start|>assistant\n")
    assert type(model_a).__name__ == "LlamaForCausalLM"


def test_resolve_folder_and_info(tiny_model_dir: Path, tmp_path: Path) -> None:
    ref = resolve_model(str(tiny_model_dir), tmp_path)
    assert ref.kind == "folder"
    info = model_info(ref)
    assert info.architecture == "LlamaForCausalLM"
    assert info.layers == 2 and info.vocab_size == 512 and info.dtype == "float32"
    model, _ = load_causal_lm(ref)
    assert info.parameters == sum(p.numel() for p in model.parameters())


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="pull-default"):
        resolve_model("default", tmp_path)
    with pytest.raises(NotFoundError, match="no model folder"):
        resolve_model(str(tmp_path / "missing"), tmp_path)
    with pytest.raises(SettingsError, match="neither"):
        resolve_model("not a model!", tmp_path)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M", tmp_path).kind == "hub"


@pytest.mark.slow
def test_default_model_is_smollm2_135m(default_model_dir: Path) -> None:
    ref = resolve_model("default", default_model_dir.parent)
    info = model_info(ref)
    assert info.architecture == "LlamaForCausalLM"
    assert 130e6 < info.parameters < 140e6
    model, tokenizer = load_causal_lm(ref)
    assert getattr(model.config, "quantization_config", None) is None
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][ids["input_ids"].shape[1] :])
