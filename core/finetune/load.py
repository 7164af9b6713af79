"""Load what a run trained (base + adapter, or full weights) and write a merged plain Hugging Face folder for export.

A run folder holds `config.yaml`, `tokenizer/` and either `adapter/` (peft or bottleneck adapter) or `model/`
(full fine-tune). A run's base may itself be a run folder: it is loaded (and merged) first, recursively, which is
how prompt tuning is stacked on a domain LoRA adapter.

What `merge_for_export` writes per method:
* lora, dora, ia3, adalora: peft `merge_and_unload()`, a plain LlamaForCausalLM folder.
* full: the trained weights as they are.
* prompt_tuning, p_tuning: the (merged) base weights plus `prompt_embeddings.safetensors` holding the virtual
  token embeddings, tensor "prompt_embeddings" of shape (num_virtual_tokens, hidden), and `finmed_export.json`
  saying so; export prepends them to the embedded input (the model alone is the untuned base).
* adapter, prefix_tuning: refused with a message: bottleneck adapters are non-linear and prefix tuning lives in
  the attention cache, so neither folds into plain weights; serve such runs in-process via `load_trained`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.atomic import atomic_dir
from core.errors import NotFoundError, ValidationError
from core.finetune import bottleneck
from core.finetune.config import TrainConfig, config_from_dict

MERGEABLE = ("lora", "dora", "ia3", "adalora")
MERGED_FROM = "finmed_merged.json"
SOFT_PROMPT = ("prompt_tuning", "p_tuning")


def is_run_folder(path: Path) -> bool:
    """True when `path` looks like a finished run folder."""
    return (path / "config.yaml").is_file() and ((path / "adapter").is_dir() or (path / "model").is_dir())


def read_run_config(run_dir: Path) -> TrainConfig:
    """The resolved config a run was trained with.

    Raises:
        NotFoundError: `run_dir` is not a finished run folder.
    """
    run_dir = Path(run_dir)
    if not is_run_folder(run_dir):
        raise NotFoundError(f"{run_dir} is not a finished training run (no config.yaml with adapter/ or model/)")
    return config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()), f"{run_dir.name}/config.yaml")


def load_base(base: str) -> tuple[Any, Any, str]:
    """Load a base for training: (model on CPU in float32, tokenizer, tokenizer folder or hub id).

    A run folder is loaded with its adapter merged (LoRA family) or applied (adapter, full).

    Raises:
        NotFoundError / SettingsError: the base cannot be resolved.
        ValidationError: the base run used a prompt method, which cannot be stacked under another method.
    """
    from core.models.resolve import load_causal_lm, resolve_model
    from core.settings import get_settings

    path = Path(base).expanduser()
    if base != "default" and is_run_folder(path):
        method = read_run_config(path).method.name
        if method in SOFT_PROMPT or method == "prefix_tuning":
            raise ValidationError(f"model.base={base}: a {method} run cannot serve as the base of another run")
        model, tokenizer = load_trained(path)
        if method in MERGEABLE:
            model = model.merge_and_unload()
        return model, tokenizer, str(path / "tokenizer")
    ref = resolve_model(base, get_settings().models_dir)
    model, tokenizer = load_causal_lm(ref)
    return model, tokenizer, ref.source


def load_trained(run_dir: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a finished run with its adapter applied, on CPU, in eval mode.

    Raises:
        NotFoundError: not a run folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))
    method = config.method.name
    model: Any
    if method == "full":
        model = AutoModelForCausalLM.from_pretrained(str(run_dir / "model"), dtype="float32")
    else:
        model, _, _ = load_base(config.model.base)
        if method == "adapter":
            model = bottleneck.load_adapters(model, run_dir / "adapter")
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(run_dir / "adapter"))
    model.eval()
    return model, tokenizer


def merge_for_export(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a plain Hugging Face model folder for a run (see the module docstring for each method).

    Written to a temporary folder beside `out_dir` and renamed at the end.

    Raises:
        ValidationError: the method cannot be merged (adapter, prefix_tuning).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    method = read_run_config(run_dir).method.name
    if method in ("adapter", "prefix_tuning"):
        why = "non-linear bottleneck layers" if method == "adapter" else "prefixes inside the attention cache"
        raise ValidationError(
            f"run {run_dir.name} uses method {method} ({why}), which cannot be merged into plain weights; "
            "serve it in-process (core.finetune.load.load_trained) or train with lora"
        )
    model, tokenizer = load_trained(run_dir)
    with atomic_dir(out_dir) as tmp:
        if method in MERGEABLE:
            model = model.merge_and_unload()
        if method in SOFT_PROMPT:
            import torch
            from safetensors.torch import save_file

            with torch.no_grad():
                prompt = model.get_prompt(batch_size=1)[0].detach().float().contiguous()  # (virtual tokens, hidden)
            model.get_base_model().save_pretrained(tmp)
            save_file({"prompt_embeddings": prompt}, str(tmp / "prompt_embeddings.safetensors"))
            note = {"kind": "soft_prompt", "method": method, "num_virtual_tokens": int(prompt.shape[0])}
            (tmp / "finmed_export.json").write_text(json.dumps(note, indent=2))
        else:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # Where the weights came from, so a run trained on this folder can be served as adapters on the plain base
        # (core.quantize.lora_slots.adapter_chain follows it).
        (tmp / MERGED_FROM).write_text(json.dumps({"run": str(run_dir.resolve()), "method": method}, indent=2))
    return out_dir
