"""Pipeline parallel: a Llama-family model cut into stages run by `torch.distributed.pipelining` (GPipe schedule).

Every rank keeps the whole (method-wrapped) model object but runs and trains only its stage: stage 0 holds the
token embeddings and the first layers, the last stage the last layers, the final norm and the LM head. The stage
module below is the only hand-written part: HF's LlamaModel.forward runs all layers, so a stage replays the same
steps (rotary embeddings, causal mask, its slice of layers) on its own slice. Batches are right-padded, so a plain
causal mask gives the real tokens exactly what the padded attention mask gives them.

Shapes must stay fixed across steps (the stages exchange buffers inferred at the first step), so every shard is
padded to `rows` x `width` with ignored labels, which add nothing to the loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.finetune import dataset as ds
from core.finetune.tensor_parallel import decoder_layers


def stage_bounds(num_layers: int, stages: int, stage: int) -> tuple[int, int]:
    """The [start, stop) decoder layers of `stage` when `num_layers` are cut into `stages` nearly equal parts."""
    edges = [round(i * num_layers / stages) for i in range(stages + 1)]
    return edges[stage], edges[stage + 1]


def causal_lm_of(model: nn.Module) -> Any:
    """The HF causal LM inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class Stage(nn.Module):
    """Layers [start, stop) of a Llama-family causal LM, with the embeddings on the first stage and the head on the
    last. Input: token ids (batch, seq) on the first stage, hidden states (batch, seq, hidden) after; output: hidden
    states, or logits (batch, seq, vocab) on the last stage."""

    def __init__(self, model: nn.Module, start: int, stop: int, *, first: bool, last: bool) -> None:
        super().__init__()
        lm = causal_lm_of(model)
        inner = lm.model
        self.embed = inner.embed_tokens if first else None
        self.layers = nn.ModuleList(list(decoder_layers(model))[start:stop])
        self.rotary = inner.rotary_emb
        self.norm = inner.norm if last else None
        self.head = lm.lm_head if last else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(x) if self.embed is not None else x  # (batch, seq, hidden)
        seq = hidden.shape[1]
        position_ids = torch.arange(seq, device=hidden.device).unsqueeze(0)  # (1, seq)
        position_embeddings = self.rotary(hidden, position_ids)
        blocked = torch.full((seq, seq), torch.finfo(hidden.dtype).min, device=hidden.device, dtype=hidden.dtype)
        mask = torch.triu(blocked, diagonal=1)[None, None]  # (1, 1, seq, seq) additive causal mask
        for layer in self.layers:
            out = layer(hidden, attention_mask=mask, position_ids=position_ids, position_embeddings=position_embeddings)
            hidden = out[0] if isinstance(out, tuple) else out
        if self.head is not None and self.norm is not None:
            return self.head(self.norm(hidden))
        return hidden


def owner_stage(name: str, num_layers: int, stages: int) -> int:
    """The stage that trains parameter `name` (embeddings: first; final norm and head: last)."""
    from core.monitoring.gradient_health import group_of

    group = group_of(name)
    if group.startswith("layer_"):
        index = int(group.split("_")[1])
        return next(s for s in range(stages) if index < stage_bounds(num_layers, stages, s)[1])
    return 0 if group in ("embed", "prompt") else stages - 1


class Pipeline:
    """This rank's stage and its GPipe schedule.

    Args:
        model: the whole method-wrapped model (the same object on every rank).
        world: the run's World (mesh dims pp, dp, tp).
        rows: rows per data-parallel shard (padded up to a multiple of the microbatch count).
        width: tokens per row (every batch is padded to it).
        pad_id: the pad token.
    """

    def __init__(self, model: nn.Module, world: Any, *, rows: int, width: int, pad_id: int) -> None:
        from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

        self.model, self.world, self.pad_id, self.width = model, world, pad_id, width
        self.stages, self.stage_index = world.pp, world.coordinate("pp")
        self.num_layers = len(decoder_layers(model))
        start, stop = stage_bounds(self.num_layers, self.stages, self.stage_index)
        self.first, self.last = self.stage_index == 0, self.stage_index == self.stages - 1
        self.module = Stage(model, start, stop, first=self.first, last=self.last)
        self.microbatches = self.stages
        self.rows = -(-rows // self.microbatches) * self.microbatches
        self.num_items = 1
        stage = PipelineStage(self.module, self.stage_index, self.stages, world.device, group=world.group("pp"))
        # No scaling by the microbatch count: `_loss` already divides by the whole micro-batch's answer tokens.
        self.schedule = ScheduleGPipe(stage, n_microbatches=self.microbatches, loss_fn=self._loss, scale_grads=False)

    def owned(self, named: list[tuple[str, nn.Parameter]]) -> list[tuple[str, nn.Parameter]]:
        """The trainable parameters this rank's stage updates."""
        return [(n, p) for n, p in named if owner_stage(n, self.num_layers, self.stages) == self.stage_index]

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Sum over this microbatch's answer tokens / the whole micro-batch's count: microbatch losses add up to it.
        flat = logits[:, :-1].float().reshape(-1, logits.shape[-1])
        return F.cross_entropy(flat, labels[:, 1:].reshape(-1), ignore_index=ds.IGNORE, reduction="sum") / (
            self.num_items
        )

    def _fixed(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((self.rows, self.width), self.pad_id, dtype=torch.long)
        labels = torch.full((self.rows, self.width), ds.IGNORE, dtype=torch.long)
        n, w = batch["input_ids"].shape
        ids[:n, :w], labels[:n, :w] = batch["input_ids"], batch["labels"]
        return ids.to(self.world.device), labels.to(self.world.device)

    def step(self, shard: dict[str, torch.Tensor], num_items: int) -> float:
        """Forward and backward of one data-parallel shard through all stages; returns this shard's loss share
        (summed answer-token loss / `num_items`) on the last stage, 0.0 elsewhere."""
        self.num_items = num_items
        ids, labels = self._fixed(shard)
        losses: list[torch.Tensor] = []
        if self.first and self.last:
            self.schedule.step(ids, target=labels, losses=losses)
        elif self.first:
            self.schedule.step(ids)
        elif self.last:
            self.schedule.step(target=labels, losses=losses)
        else:
            self.schedule.step()
        return float(sum(loss.item() for loss in losses)) if self.last else 0.0

    def sync_weights(self, named: list[tuple[str, nn.Parameter]]) -> None:
        """Copy every trained parameter from the rank of its stage to the other stages (before eval and saving)."""
        import torch.distributed as dist

        group = self.world.group("pp")
        with torch.no_grad():
            for name, param in named:
                owner = owner_stage(name, self.num_layers, self.stages)
                dist.broadcast(param.data, group=group, group_src=owner)
