"""Tensor parallel for Llama-family decoders: attention heads and MLP columns split with DTensor `parallelize_module`.

The plan is Megatron's: q/k/v and gate/up projections are column-parallel (each rank holds its share of the heads
and of the MLP width), o and down projections are row-parallel (their outputs are summed over ranks). The
attention code reshapes with `-1` heads, so it runs on a rank's local heads unchanged.

LoRA on a split projection (peft wraps it as `base_layer` + `lora_A` + `lora_B`) is split the same way: for a
column-parallel projection `lora_B` is column-parallel too (its output matches the local share), for a row-parallel
one `lora_A` is row-parallel (its input is the local share; its summed output feeds the replicated `lora_B`).
DTensor's own backward sums the gradients of replicated inputs, so everything below a split layer stays exact.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from core.errors import ValidationError

COLUMN = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
ROW = ("self_attn.o_proj", "mlp.down_proj")


def check_divides(tp: int, *, heads: int, kv_heads: int, intermediate: int) -> None:
    """Raise when `tp` cannot split this model evenly.

    Raises:
        ValidationError: tp does not divide the attention heads, the key/value heads or the MLP width.
    """
    for what, count in (("attention heads", heads), ("key/value heads", kv_heads), ("MLP width", intermediate)):
        if count % tp:
            raise ValidationError(f"strategy.tp={tp} does not divide the model's {count} {what}; choose a divisor")


def decoder_layers(model: nn.Module) -> Any:
    """The `layers` ModuleList of a (peft-wrapped) Llama-family causal LM."""
    inner: Any = model
    while not hasattr(inner, "layers"):
        for attr in ("base_model", "model"):
            child = getattr(inner, attr, None)
            if isinstance(child, nn.Module) and child is not inner:
                inner = child
                break
        else:
            raise ValidationError(f"tensor/pipeline parallel needs a decoder with `layers`; {type(model).__name__}")
    return inner.layers


def layer_plan(layer: nn.Module) -> dict[str, Any]:
    """The `parallelize_module` plan of one decoder layer (LoRA-wrapped projections included)."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan: dict[str, Any] = {}
    for names, style in ((COLUMN, ColwiseParallel), (ROW, RowwiseParallel)):
        for name in names:
            module = layer.get_submodule(name)
            if not hasattr(module, "base_layer"):
                plan[name] = style()
                continue
            plan[f"{name}.base_layer"] = style()
            for adapter in getattr(module, "lora_A", {}):
                side = "lora_B" if style is ColwiseParallel else "lora_A"
                plan[f"{name}.{side}.{adapter}"] = style()
    return plan


def parallelize(model: nn.Module, mesh: Any) -> nn.Module:
    """Split every decoder layer of `model` over the 1-D device mesh `mesh` (in place); returns the model."""
    from torch.distributed.tensor.parallel import parallelize_module

    for layer in decoder_layers(model):
        parallelize_module(layer, mesh, layer_plan(layer))
    return model
