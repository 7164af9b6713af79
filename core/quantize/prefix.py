"""A soft prompt served exactly: the learned virtual-token embeddings become extra rows of the exported embedding
table, and the server prepends their ids to every prompt.

A prompt-tuning (or p-tuning, or finance `adapt`) run learns `num_virtual_tokens` input embeddings that peft puts in
front of every prompt. The ONNX Runtime GenAI generator feeds token ids, not embeddings, so the export appends the
learned vectors to the embedding table (`model.embed_tokens.weight`, read by the graph's embedding Gather) as rows
V .. V+n-1, where V is the vocabulary size. The output layer keeps its V rows, so a virtual token is never generated;
the ids exist only to be prepended. Same positions, same attention, same vectors as in PyTorch: the served scores
equal the in-process ones within float rounding (tests/unit/core/quantize/test_prompt_tuning.py states the tolerance).

Written by hand (a few lines of onnx-ir): no exporter offers soft prompts for a token-id generator; the model
builder has no option for it, and onnxruntime-genai feeds input embeddings only to its multimodal pipelines.

Files in the export folder:
- `prompt_prefix.json`: {"kind": "soft_prompt", "exact": true, "num_virtual_tokens", "hidden_size", "vocab_size",
  "token_ids": [V, ..., V+n-1], "embeddings_file"}.
- `prompt_prefix.safetensors`: tensor "embeddings", float32, (num_virtual_tokens, hidden): the learned vectors as
  trained, for the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ValidationError

PREFIX_JSON = "prompt_prefix.json"
PREFIX_WEIGHTS = "prompt_prefix.safetensors"
EMBEDDING_GATHER = "/model/embed_tokens/Gather"


def write_prompt_prefix(onnx_dir: Path, prefix: Any) -> dict[str, Any]:
    """Append the virtual-token embeddings to the exported embedding table and describe them.

    Args:
        onnx_dir: the builder's output folder (model.onnx, model.onnx.data, genai_config.json).
        prefix: learned virtual-token embeddings, torch tensor or array (num_virtual_tokens, hidden).

    Raises:
        ValidationError: the graph has no float embedding table to extend (e.g. a quantized, shared embedding), or
            its width differs from the prompt's.
    """
    import onnx_ir as ir
    from safetensors.numpy import save_file

    onnx_dir = Path(onnx_dir)
    rows = np.asarray(prefix.detach().float().numpy() if hasattr(prefix, "detach") else prefix, dtype=np.float32)
    model_path = onnx_dir / "model.onnx"
    model = ir.load(str(model_path))
    table = _embedding_table(model)
    current = table.const_value.numpy()  # (vocab, hidden)
    if current.ndim != 2 or current.shape[1] != rows.shape[1]:
        raise ValidationError(
            f"soft prompt of width {rows.shape[1]} does not fit the embedding table {list(current.shape)} of {onnx_dir}"
        )
    vocab = int(current.shape[0])
    table.const_value = ir.Tensor(np.concatenate([current, rows.astype(current.dtype)]), name=table.name)
    _save(model, onnx_dir)
    save_file({"embeddings": np.ascontiguousarray(rows)}, str(onnx_dir / PREFIX_WEIGHTS))
    description = {
        "kind": "soft_prompt",
        "exact": True,
        "num_virtual_tokens": int(rows.shape[0]),
        "hidden_size": int(rows.shape[1]),
        "vocab_size": vocab,
        "token_ids": list(range(vocab, vocab + int(rows.shape[0]))),
        "embeddings_file": PREFIX_WEIGHTS,
    }
    (onnx_dir / PREFIX_JSON).write_text(json.dumps(description, indent=2))
    return description


def _embedding_table(model: Any) -> Any:
    """The float initializer the embedding Gather reads (rows = token ids)."""
    gathers = [n for n in model.graph if n.op_type == "Gather" and n.name == EMBEDDING_GATHER]
    table = gathers[0].inputs[0] if gathers else None
    if table is None or not table.is_initializer() or table.const_value is None:
        raise ValidationError(
            "this export has no plain embedding table to carry a soft prompt (the embedding is quantized or shared "
            "with the output layer): export the prompt-tuning run at fp32, int8 or int4"
        )
    return table


def _save(model: Any, onnx_dir: Path) -> None:
    """Write the graph back under the builder's file names (model.onnx + model.onnx.data), atomically per file."""
    import onnx_ir as ir

    side = onnx_dir / ".prefix"
    side.mkdir()
    try:
        ir.save(model, str(side / "model.onnx"), external_data="model.onnx.data")
        for name in ("model.onnx", "model.onnx.data"):
            if (side / name).is_file():
                (side / name).replace(onnx_dir / name)
    finally:
        for leftover in side.iterdir():
            leftover.unlink()
        side.rmdir()


def read_prefix_ids(model_dir: Path) -> list[int]:
    """Token ids to prepend to every prompt for this export folder ([] when it has no soft prompt).

    Raises:
        ValidationError: an older export whose prompt_prefix.json holds nearest-vocabulary tokens instead of the exact
            virtual tokens (export the run again).
    """
    path = Path(model_dir) / PREFIX_JSON
    if not path.is_file():
        return []
    description = json.loads(path.read_text())
    if not description.get("exact"):
        raise ValidationError(
            f"{path} approximates its soft prompt by nearest vocabulary tokens (an export from before exact soft "
            "prompts); export the run again with `finmed export`"
        )
    return [int(i) for i in description["token_ids"]]
