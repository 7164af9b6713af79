"""A prompt-tuning run exports its learned prompt exactly: the virtual-token embeddings become extra rows of the
embedding table, the server prepends their ids, and served scores equal in-process PyTorch scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ValidationError
from core.quantize.export import export_model
from core.quantize.precisions import ExportOptions
from core.quantize.prefix import PREFIX_JSON, PREFIX_WEIGHTS, read_prefix_ids
from core.serving.state import ServingState

VIRTUAL = 8  # >= MIN_PREFIX_TOKENS, so the virtual tokens are also a cached prefix
TOLERANCE = 1e-4  # max |log p| difference, served fp32 export against PyTorch (float32 rounding only)
PROMPTS = ["Risk level: 3; Basis: large_amount", "Findings: No focal consolidation.", "Impression:"]


@pytest.fixture(scope="module")
def prompt_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare peft prompt-tuning folder on the tiny model with random (far from any token) virtual embeddings."""
    import torch
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(5)
    run = tmp_path_factory.mktemp("pt") / "pt-run"
    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=VIRTUAL, prompt_tuning_init=PromptTuningInit.RANDOM
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), config)
    model.save_pretrained(str(run))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(run))
    return run


@pytest.fixture(scope="module")
def exported(prompt_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pt-export") / "out"
    return export_model(options=ExportOptions("fp32"), out_dir=out, run_dir=prompt_run).path


def test_the_export_carries_the_exact_virtual_tokens(exported: Path) -> None:
    from safetensors.numpy import load_file

    description = json.loads((exported / PREFIX_JSON).read_text())
    assert description["exact"] is True and description["kind"] == "soft_prompt"
    assert description["num_virtual_tokens"] == VIRTUAL and description["hidden_size"] == 64
    assert read_prefix_ids(exported) == list(range(512, 512 + VIRTUAL)), "rows after the 512 vocabulary tokens"
    assert load_file(str(exported / PREFIX_WEIGHTS))["embeddings"].shape == (VIRTUAL, 64)
    assert json.loads((exported / "finmed_export.json").read_text())["method"] == "prompt_tuning"
    genai = json.loads((exported / "genai_config.json").read_text())
    assert genai["model"]["vocab_size"] == 512, "the output layer still predicts only real tokens"


def _pytorch_logprobs(prompt_run: Path, tiny_model_dir: Path, prompt: str) -> np.ndarray:
    """log softmax of the next token after `prompt`, from peft's own prompt-tuning forward pass."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(prompt_run))
    model.eval()
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]  # (vocab,): peft prepends the virtual tokens
    return torch.log_softmax(logits.double(), -1).numpy()


def test_served_scores_equal_pytorch(exported: Path, prompt_run: Path, tiny_model_dir: Path) -> None:
    state = ServingState.in_process({"pt": exported})
    try:
        ids = list(range(0, 512, 8))  # 64 ids across the vocabulary (the most score_token_ids takes)
        for prompt in PROMPTS:
            served = [  # twice: the second request runs on the cached virtual-token prefix
                state.generate_blocking("pt", prompt, max_tokens=1, temperature=0, score_token_ids=ids)
                for _ in range(2)
            ]
            expected = _pytorch_logprobs(prompt_run, tiny_model_dir, prompt)[ids]
            for req in served:
                assert req.first_scores is not None
                assert np.abs(req.first_scores - expected).max() < TOLERANCE
            assert served[1].cached_tokens >= VIRTUAL
            assert len(served[0].prompt_ids) == VIRTUAL + len(state.workers["pt"].model.encode(prompt))
    finally:
        state.close()


def test_an_older_nearest_token_export_is_refused(tmp_path: Path) -> None:
    (tmp_path / PREFIX_JSON).write_text(json.dumps({"kind": "prompt_tuning", "token_ids": [1, 2], "mean_cosine": 0.3}))
    with pytest.raises(ValidationError, match="export the run again"):
        read_prefix_ids(tmp_path)
