"""Checkpoint contents that do not depend on the world size: trainable weights and AdamW states keyed by parameter
name, gathered whole on rank 0 and re-sharded on load, so a run saved by 2 ranks resumes with 1 (or the reverse).

torch's `torch.distributed.checkpoint.state_dict` does the gathering and re-sharding for plain, DDP, FSDP and
DTensor (tensor parallel) modules alike; pipeline stages each hold part of the optimizer, so their parts are
gathered by object and merged here.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from core.finetune.distributed import World


def _options(world: World, *, full: bool) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # cpu_offload gathers to rank 0 only; it needs a process group, so one process keeps tensors where they are.
    return StateDictOptions(
        full_state_dict=full and world.distributed,
        cpu_offload=full and world.distributed,
        ignore_frozen_params=True,
        strict=False,
    )


def gather(world: World, model: nn.Module, optimizer: Any, *, staged: bool = False) -> tuple[dict, dict] | None:
    """(weights, optimizer state) of the whole run on rank 0, None on the other ranks. Every rank must call it.

    Args:
        model: the trained module (wrapper or model).
        staged: pipeline parallel: each rank's optimizer covers its stage only (weights must be synced first).
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    if not staged:
        weights = get_model_state_dict(model, options=_options(world, full=True))
        optim = get_optimizer_state_dict(model, optimizer, options=_options(world, full=True))
        return (weights, optim) if world.is_main else None
    weights = get_model_state_dict(model, options=_options(world, full=False))
    parts = world.gather(get_optimizer_state_dict(model, optimizer, options=_options(world, full=False)))
    if not world.is_main:
        return None
    merged: dict[str, Any] = {"state": {}, "param_groups": []}
    for part in parts:
        merged["state"].update(part["state"])
        for index, group in enumerate(part["param_groups"]):
            if index == len(merged["param_groups"]):
                merged["param_groups"].append({**group, "params": []})
            merged["param_groups"][index]["params"].extend(group["params"])
    return {name: t.detach().cpu() for name, t in weights.items()}, merged


def restore(
    world: World, model: nn.Module, optimizer: Any, weights: dict, optim: dict, *, staged: bool = False
) -> None:
    """Load what `gather` saved (with any world size) into this rank's model and optimizer. Every rank calls it."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, weights, options=_options(world, full=not staged))
    if staged:
        own = {name for group in optimizer.param_groups for name in _names(model, group["params"])}
        optim = {
            "state": {k: v for k, v in optim["state"].items() if k in own},
            "param_groups": [{**g, "params": [p for p in g["params"] if p in own]} for g in optim["param_groups"]],
        }
    set_optimizer_state_dict(model, optimizer, optim, options=_options(world, full=not staged))


def _names(model: nn.Module, params: list[Any]) -> list[str]:
    ids = {id(p) for p in params}
    return [name for name, p in model.named_parameters() if id(p) in ids]
