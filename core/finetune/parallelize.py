"""Wrap a method-applied model for its strategy: DDP through accelerate, FSDP with torch's `fully_shard`, tensor
parallel with DTensor (optionally sharded over data parallel too), DeepSpeed ZeRO through accelerate's plugin.

Pipeline parallel is not a wrapper (core/finetune/pipeline_parallel.py builds the stage). What the recipe needs to
know afterwards is in `Prepared`: the module to call, the optimizer, and how data-parallel gradients are combined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.finetune.config import StrategySection
from core.finetune.distributed import World
from core.finetune.tensor_parallel import decoder_layers


@dataclass
class Prepared:
    """The model as the recipe trains it.

    Attributes:
        module: what forward is called on (DDP/FSDP/DeepSpeed wrapper, or the model itself).
        optimizer: the optimizer (accelerate's wrapper under DeepSpeed).
        averages: True when the wrapper averages gradients over data-parallel ranks (DDP, FSDP, DeepSpeed); the
            recipe then scales each rank's loss by dp so the sum of answer-token losses / the global count results.
        accelerator: the accelerate.Accelerator for ddp and deepspeed (backward goes through it), else None.
    """

    module: nn.Module
    optimizer: Any
    averages: bool
    accelerator: Any = None


def _fully_shard(model: nn.Module, mesh: Any, cpu_offload: bool) -> None:
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    # pin_memory needs an accelerator; on a CPU-only machine the offload policy keeps plain CPU tensors.
    policy = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if cpu_offload else OffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, offload_policy=policy)
    fully_shard(model, mesh=mesh, offload_policy=policy)


def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)


def prepare(
    model: nn.Module, world: World, strategy: StrategySection, *, lr: float, weight_decay: float, ds_config: Any = None
) -> Prepared:
    """Wrap `model` (already on its device, method applied) and build its AdamW for `world`.

    Args:
        ds_config: the DeepSpeed JSON dict (strategy deepspeed only; core.finetune.deepspeed_config builds it).
    """
    name = strategy.name
    if name == "deepspeed":
        from accelerate import Accelerator
        from accelerate.utils import DeepSpeedPlugin

        accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=ds_config))
        module, optimizer = accelerator.prepare(model, _adamw(model, lr, weight_decay))
        return Prepared(module, optimizer, averages=True, accelerator=accelerator)
    if name == "ddp" or (name == "single" and world.dp > 1):
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=world.device.type == "cpu")
        module = accelerator.prepare_model(model)
        return Prepared(module, _adamw(model, lr, weight_decay), averages=True, accelerator=accelerator)
    if world.tp > 1:
        from core.finetune.tensor_parallel import parallelize

        parallelize(model, world.mesh["tp"])
    if name == "fsdp" or (world.tp > 1 and world.dp > 1):
        _fully_shard(model, world.mesh["dp"], strategy.fsdp_cpu_offload)
        return Prepared(model, _adamw(model, lr, weight_decay), averages=True)
    return Prepared(model, _adamw(model, lr, weight_decay), averages=False)
