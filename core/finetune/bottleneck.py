"""Bottleneck adapter layers (Houlsby et al. 2019) for Llama-family models, injected the way peft injects LoRA.

Why hand-written: peft 0.21 has no bottleneck adapter tuner (its "adaption_prompt" is LLaMA-Adapter, a prompt
method) and cannot register a new tuner without a new `PeftType` enum member; AdapterHub's `adapters` 1.3 pins
transformers ~=4.57 and cannot be installed next to transformers 5. So this file holds the small part we need:

* `BottleneckLinear` wraps a target `nn.Linear` (the attention output projection `o_proj` and the MLP output
  projection `down_proj`, i.e. "after attention" and "after the MLP", before each residual add) and returns
  ``h + up(act(down(h)))`` with ``h = base(x)``. `up` starts at zero, so an untrained adapter is the identity.
* `inject_adapters` replaces the targets in place (like peft's `_replace_module`) and freezes everything else.
* `save_adapters` / `load_adapters` write and read only adapter weights (`adapter_model.safetensors`) plus
  `adapter_config.json`, the same file names a peft adapter folder uses.

Merging: the adapter is non-linear, so it cannot be folded into the Llama weights; a run with this method is
served in-process through `core.finetune.load.load_trained` (see `merge_for_export` for what export gets).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTER_TYPE = "finmed_bottleneck"
DEFAULT_TARGETS = ("o_proj", "down_proj")
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class BottleneckLinear(nn.Module):
    """A frozen linear layer followed by a residual bottleneck adapter.

    Args:
        base: the wrapped layer (kept, frozen).
        size: bottleneck width.
        activation: 'relu', 'gelu' or 'silu'.
        dropout: dropout on the bottleneck activations.
    """

    def __init__(self, base: nn.Linear, size: int, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        width = base.out_features
        device, dtype = base.weight.device, base.weight.dtype
        self.adapter_down = nn.Linear(width, size, device=device, dtype=dtype)
        self.adapter_act = _ACTIVATIONS[activation]()
        self.adapter_dropout = nn.Dropout(dropout)
        self.adapter_up = nn.Linear(size, width, device=device, dtype=dtype)
        nn.init.zeros_(self.adapter_up.weight)
        nn.init.zeros_(self.adapter_up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, in_features) -> (batch, seq, out_features)."""
        h = self.base(x)  # (batch, seq, hidden)
        return h + self.adapter_up(self.adapter_dropout(self.adapter_act(self.adapter_down(h))))


def inject_adapters(
    model: nn.Module,
    *,
    size: int,
    activation: str = "relu",
    dropout: float = 0.0,
    targets: tuple[str, ...] = DEFAULT_TARGETS,
) -> list[str]:
    """Freeze `model` and wrap every linear layer whose name ends with one of `targets`.

    Returns:
        The names of the wrapped modules.

    Raises:
        ValueError: no module matched (the model is not Llama-like).
    """
    for param in model.parameters():
        param.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, BottleneckLinear(module, size, activation, dropout))
            wrapped.append(name)
    if not wrapped:
        raise ValueError(f"no linear layer named {' or '.join(targets)} found; adapter layers need a Llama-like model")
    for name, param in model.named_parameters():
        param.requires_grad_(".adapter_" in name)
    config = {"adapter_type": ADAPTER_TYPE, "size": size, "activation": activation, "dropout": dropout}
    model._finmed_adapter_config = {**config, "targets": list(targets)}  # type: ignore[assignment]
    return wrapped


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights, by parameter name."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if ".adapter_" in name}


def save_adapters(model: nn.Module, folder: Path) -> None:
    """Write `adapter_model.safetensors` and `adapter_config.json` for an injected model."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(model._finmed_adapter_config, indent=2))


def load_adapters(model: nn.Module, folder: Path) -> nn.Module:
    """Inject adapters described by `folder/adapter_config.json` into `model` and load their weights (strict)."""
    from safetensors.torch import load_file

    config: dict[str, Any] = json.loads((folder / "adapter_config.json").read_text())
    inject_adapters(
        model,
        size=config["size"],
        activation=config["activation"],
        dropout=config["dropout"],
        targets=tuple(config["targets"]),
    )
    state = load_file(str(folder / "adapter_model.safetensors"))
    own = dict(model.named_parameters())
    missing = sorted(set(adapter_state_dict(model)) - set(state))
    if missing:
        raise ValueError(f"{folder}: adapter weights missing for {missing[0]} (and {len(missing) - 1} more)")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)
    return model
