"""The process group a training run is part of: ranks, the device mesh, batch sharding and cross-rank reductions.

A recipe asks this object, never torch.distributed directly, who it is and how to sum a number over ranks. With
one process (no torchrun environment) every method is the identity, so the single-process recipe is the same code.
The process group comes from accelerate's `PartialState` (Gloo on CPU, NCCL on CUDA, read from torchrun's
environment); the mesh is torch's `init_device_mesh` with dims ("pp", "dp", "tp").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from core.finetune import dataset as ds
from core.finetune.config import StrategySection


def degrees(strategy: StrategySection, world: int) -> tuple[int, int, int]:
    """(pp, dp, tp) for a world size: tp / pp take what the other given degrees leave for their own strategy, dp
    what is left after them."""
    tp, pp, dp = strategy.tp, strategy.pp, strategy.dp
    if tp is None:
        tp = max(1, world // ((pp or 1) * (dp or 1))) if strategy.name == "tp" else 1
    if pp is None:
        pp = max(1, world // (tp * (dp or 1))) if strategy.name == "pp" else 1
    return pp, dp or max(1, world // (tp * pp)), tp


@dataclass
class World:
    """This process's place in the run. `World.single()` is the one-process run."""

    strategy: str = "single"
    rank: int = 0
    size: int = 1
    pp: int = 1
    dp: int = 1
    tp: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    mesh: Any = None  # torch DeviceMesh with dims ("pp", "dp", "tp"), None for one process

    @classmethod
    def single(cls, device: torch.device) -> World:
        """The one-process world."""
        return cls(device=device)

    @classmethod
    def join(cls, strategy: StrategySection, device_choice: str) -> World:
        """Join the process group torchrun set up (or return the one-process world when there is none).

        Args:
            strategy: the config's strategy section.
            device_choice: model.device ('auto', 'cpu', 'cuda').
        """
        size = int(os.environ.get("WORLD_SIZE", "1"))
        cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
        if size == 1 and strategy.name == "single":
            return cls.single(torch.device("cuda" if cuda else "cpu"))
        from accelerate import PartialState
        from torch.distributed.device_mesh import init_device_mesh

        state = PartialState(cpu=not cuda)  # initialises the process group: NCCL on CUDA, Gloo on CPU
        pp, dp, tp = degrees(strategy, size)
        mesh = init_device_mesh("cuda" if cuda else "cpu", (pp, dp, tp), mesh_dim_names=("pp", "dp", "tp"))
        return cls(strategy.name, state.process_index, size, pp, dp, tp, state.device, mesh)

    # ------------------------------------------------------------------------------------------ who am I
    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.size > 1 or self.strategy != "single"

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes the run folder."""
        return self.rank == 0

    def coordinate(self, dim: str) -> int:
        """This rank's index along a mesh dimension ('pp', 'dp' or 'tp')."""
        return 0 if self.mesh is None else self.mesh.get_local_rank(dim)

    def group(self, dim: str) -> Any:
        """The process group of a mesh dimension (None for one process)."""
        return None if self.mesh is None else self.mesh.get_group(dim)

    # ------------------------------------------------------------------------------------------ data
    def shard(self, batch: dict[str, torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
        """This data-parallel rank's rows of a micro-batch (contiguous chunks, like `torch.tensor_split`).

        A rank whose chunk is empty (last micro-batch smaller than dp) gets one padding row whose labels are all
        ignored, so it still joins the gradient collectives while adding nothing to the loss.
        """
        if self.dp == 1:
            return batch
        rows = torch.tensor_split(torch.arange(batch["input_ids"].shape[0]), self.dp)[self.coordinate("dp")]
        if len(rows) == 0:
            width = batch["input_ids"].shape[1]
            return {
                "input_ids": torch.full((1, width), pad_id, dtype=torch.long),
                "attention_mask": torch.ones((1, width), dtype=torch.long),
                "labels": torch.full((1, width), ds.IGNORE, dtype=torch.long),
            }
        return {key: value[rows] for key, value in batch.items()}

    # ------------------------------------------------------------------------------------------ reductions
    def sum(self, value: float, dim: str | None = None) -> float:
        """Sum a number over all ranks (or over one mesh dimension)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor, group=self.group(dim) if dim else None)
        return float(tensor.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank `src`'s `obj` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")
