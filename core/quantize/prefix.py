"""The learned prompt of a prompt-tuning run, written next to the exported base model for the server to prepend.

Files (both in the export folder):
- `prompt_prefix.safetensors`: tensor "embeddings", float32, shape (num_virtual_tokens, hidden): the exact learned
  virtual-token embeddings, for a server that feeds input embeddings.
- `prompt_prefix.json`: {"kind": "prompt_tuning", "num_virtual_tokens", "hidden_size", "embeddings_file",
  "token_ids", "mean_cosine"}. `token_ids` are the vocabulary tokens nearest (cosine) to each virtual token;
  a token-id server (the GenAI generator) prepends them to every prompt. `mean_cosine` says how faithful that
  projection is (1.0 = exact).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PREFIX_JSON = "prompt_prefix.json"
PREFIX_WEIGHTS = "prompt_prefix.safetensors"


def write_prompt_prefix(out_dir: Path, prefix: Any, input_embeddings: Any) -> dict[str, Any]:
    """Write both prefix files and return the JSON description.

    Args:
        prefix: learned virtual-token embeddings, torch tensor (num_virtual_tokens, hidden).
        input_embeddings: the base model's token embedding matrix, torch tensor (vocab, hidden).
    """
    import torch
    from safetensors.torch import save_file

    prefix = prefix.detach().float()
    table = input_embeddings.detach().float()
    cosine = torch.nn.functional.normalize(prefix, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T
    best = cosine.max(dim=-1)  # values, indices: (num_virtual_tokens,)
    save_file({"embeddings": prefix.contiguous()}, str(Path(out_dir) / PREFIX_WEIGHTS))
    description = {
        "kind": "prompt_tuning",
        "num_virtual_tokens": int(prefix.shape[0]),
        "hidden_size": int(prefix.shape[1]),
        "embeddings_file": PREFIX_WEIGHTS,
        "token_ids": [int(i) for i in best.indices],
        "mean_cosine": round(float(best.values.mean()), 4),
    }
    (Path(out_dir) / PREFIX_JSON).write_text(json.dumps(description, indent=2))
    return description


def read_prefix_ids(model_dir: Path) -> list[int]:
    """Token ids to prepend to every prompt for this export folder ([] when it has no prompt prefix)."""
    path = Path(model_dir) / PREFIX_JSON
    return list(json.loads(path.read_text())["token_ids"]) if path.is_file() else []
