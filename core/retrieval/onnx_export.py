"""Export a sentence-transformers encoder (its Hugging Face transformer) to ONNX once, cached under the models folder.

optimum (which sentence-transformers uses for its own ONNX backend) is not installed here, so the export calls
`torch.onnx.export` directly on the transformer; pooling and normalisation stay in numpy (core.retrieval.embeddings).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

from core.errors import FinmedError

ONNX_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def model_fingerprint(model_dir: Path) -> str:
    """A short digest of the model folder's weight and config files (name, size, mtime): the ONNX cache key."""
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for path in sorted(model_dir.glob("*")):
        if path.is_file() and path.suffix in (".safetensors", ".bin", ".json"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


class _LastHiddenState(torch.nn.Module):
    """Wraps a transformer so that export sees positional inputs and one output, (batch, seq, hidden)."""

    def __init__(self, model: torch.nn.Module, use_token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.use_token_types = use_token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_types:
            kwargs["token_type_ids"] = rest[0]
        return self.model(**kwargs).last_hidden_state


def export_onnx(model_dir: Path, cache_dir: Path) -> Path:
    """Export the transformer in `model_dir` to `cache_dir/<fingerprint>/model.onnx` unless already there.

    Inputs are input_ids, attention_mask (and token_type_ids when the model has them), each (batch, seq) int64;
    the output is last_hidden_state (batch, seq, hidden). Written to a temporary name, then renamed.

    Returns:
        The path of the ONNX file.
    """
    from transformers import AutoModel, AutoTokenizer

    target = cache_dir / model_fingerprint(model_dir) / ONNX_FILE
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise FinmedError(f"cannot load embedding model from {model_dir} for ONNX export: {exc}") from None
    sample = tokenizer(["an example sentence", "a second, longer example sentence"], padding=True, return_tensors="pt")
    use_token_types = "token_type_ids" in sample
    names = list(INPUT_NAMES if use_token_types else INPUT_NAMES[:2])
    dynamic = {name: {0: "batch", 1: "seq"} for name in [*names, "last_hidden_state"]}
    tmp = target.with_name(f".{ONNX_FILE}.{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model, use_token_types),
            tuple(sample[name] for name in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, target)
    return target
