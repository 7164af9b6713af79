"""Turn a fine-tuning run into a plain Hugging Face model folder the ONNX builder reads.

Two kinds of run are accepted: a `finmed train` run folder (config.yaml, adapter/ or model/, tokenizer/), which
core.finetune.load.merge_for_export merges (stacked runs included), and a bare peft adapter folder
(adapter_config.json + weights), merged here onto the base it names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, ValidationError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PROMPT_METHODS = ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")


@dataclass(frozen=True)
class MergedModel:
    """A merged model folder plus what the export must carry alongside it.

    Attributes:
        path: Hugging Face folder (config.json, weights, tokenizer).
        base_model: base model name or path the adapter was trained on.
        method: peft type in lower case ("lora", "prompt_tuning", ...) or "base" for a plain model.
        prompt_prefix: for prompt tuning, the learned virtual-token embeddings, shape (num_virtual_tokens, hidden).
    """

    path: Path
    base_model: str
    method: str
    prompt_prefix: Any = None


def read_adapter_config(run_dir: Path) -> dict[str, Any]:
    """The run's adapter_config.json.

    Raises:
        NotFoundError: the folder is missing, or holds no adapter_config.json / adapter weights.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotFoundError(f"run folder {run_dir} does not exist")
    config_path = run_dir / ADAPTER_CONFIG
    if not config_path.is_file() or not any((run_dir / name).is_file() for name in ADAPTER_WEIGHTS):
        raise NotFoundError(
            f"run folder {run_dir} holds no peft adapter (expected {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS[0]}): "
            "point --run at a finished fine-tuning run, or use --model for a plain model"
        )
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{config_path} is not valid JSON: {exc}") from None


def is_finmed_run(run_dir: Path) -> bool:
    """True for a `finmed train` run folder (as opposed to a bare peft adapter folder)."""
    from core.finetune.load import is_run_folder

    return is_run_folder(Path(run_dir))


def check_run(run_dir: Path) -> None:
    """Validate a run folder of either kind before any work starts (NotFoundError / ValidationError)."""
    if is_finmed_run(run_dir):
        from core.finetune.load import read_run_config

        read_run_config(Path(run_dir))
    else:
        read_adapter_config(run_dir)


def merge_finmed_run(run_dir: Path, out_dir: Path) -> MergedModel:
    """Merge a `finmed train` run with core.finetune.load.merge_for_export (a soft prompt comes back as prefix)."""
    from core.finetune.load import merge_for_export, read_run_config

    config = read_run_config(Path(run_dir))
    merge_for_export(run_dir, out_dir)
    prefix = None
    prompt_file = Path(out_dir) / "prompt_embeddings.safetensors"
    if prompt_file.is_file():
        from safetensors.torch import load_file

        prefix = load_file(str(prompt_file))["prompt_embeddings"]
    return MergedModel(Path(out_dir), config.model.base, config.method.name, prefix)


def merge_run(run_dir: Path, out_dir: Path, *, base: str | None = None) -> MergedModel:
    """Load base + adapter, merge (LoRA and friends) or keep the prompt embeddings (prompt tuning), save to out_dir.

    Args:
        run_dir: folder with adapter_config.json and adapter weights (tokenizer optional).
        out_dir: empty folder to write the merged Hugging Face model into.
        base: base model folder or hub id; default: adapter_config.json's base_model_name_or_path.

    Raises:
        NotFoundError: no adapter in run_dir, or the base model cannot be loaded.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = read_adapter_config(run_dir)
    base_name = base or config.get("base_model_name_or_path")
    if not base_name:
        raise ValidationError(f"{Path(run_dir) / ADAPTER_CONFIG} names no base_model_name_or_path: pass --base")
    try:
        model = AutoModelForCausalLM.from_pretrained(base_name, dtype=torch.float32)
    except OSError as exc:
        raise NotFoundError(f"base model '{base_name}' of run {run_dir} cannot be loaded: pass --base FOLDER") from exc
    tokenizer_source = run_dir if (Path(run_dir) / "tokenizer_config.json").is_file() else base_name
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    peft_model = PeftModel.from_pretrained(model, str(run_dir))
    peft_type = str(config.get("peft_type", "LORA")).upper()
    prefix = None
    if peft_type in PROMPT_METHODS:
        if peft_type != "PROMPT_TUNING":
            raise ValidationError(
                f"run {run_dir}: peft type {peft_type} cannot be exported; only LoRA-style and prompt tuning"
            )
        with torch.no_grad():
            prefix = peft_model.get_prompt_embedding_to_save("default").detach().float()  # (virtual, hidden)
        merged = peft_model.get_base_model()
    else:
        merged = peft_model.merge_and_unload()
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return MergedModel(Path(out_dir), str(base_name), peft_type.lower(), prefix)
