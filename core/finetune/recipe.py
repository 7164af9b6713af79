"""One fine-tuning run as a readable recipe (torchtune style): setup(), train(), save_checkpoint(), finish().

Why a hand-written loop rather than `transformers.Trainer`: the run needs an FGM second pass inside each step,
gradient health measured between backward and clipping, per-step Prometheus output and a checkpoint format
whose resume is bit-for-bit the uninterrupted run (data order is a pure function of seed and epoch, RNG states
are saved); all of it reads more plainly as ~300 lines here than as Trainer subclass overrides. The pieces
themselves come from libraries: models from transformers, methods from peft, AdamW and schedules from
torch/transformers, metrics from prometheus_client.

The run is written into `<runs>/.<name>.partial/` and renamed to `<runs>/<name>/` only when it is complete.

The same recipe runs under torchrun (core/finetune/launch.py starts it): `World` says which rank this is, the
strategy wraps the model (core/finetune/parallelize.py, pipeline_parallel.py), each data-parallel rank takes its
share of every micro-batch, and only rank 0 writes the run folder. Each rank's loss is its shard's summed
answer-token loss over the whole micro-batch's count, so N ranks follow one process's trajectory.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.console import console
from core.data.records import load_records
from core.errors import ConflictError, FinmedError, NotFoundError
from core.finetune import checkpoint_state
from core.finetune import dataset as ds
from core.finetune.config import TrainConfig
from core.finetune.distributed import World
from core.finetune.fgm import FGM
from core.finetune.methods import apply_method, count_parameters, save_trained
from core.monitoring.gradient_health import GradientHealth, gradient_squares, health_of
from core.monitoring.rank_metrics import RankStep, as_dict, combine
from core.monitoring.training_metrics import TrainingMetrics

StepHook = Callable[[int, dict[str, Any]], None]


class TrainingStopped(FinmedError):
    """The run stopped on its own (non-finite loss or gradients); the last good checkpoint is kept."""


class TrainingInterrupted(FinmedError):
    """Ctrl-C: a checkpoint was saved and the run can continue with --resume."""

    exit_code = 130


def resolve_paths(config: TrainConfig) -> TrainConfig:
    """A copy with the dataset path and a folder base made absolute (what config.yaml records)."""
    resolved = config.model_copy(deep=True)
    resolved.dataset.path = config.dataset.path.expanduser().resolve()
    base = Path(config.model.base).expanduser()
    if config.model.base != "default" and base.exists():
        resolved.model.base = str(base.resolve())
    return resolved


def resolve_mixed_precision(setting: str, device: torch.device) -> str:
    """train.mixed_precision as it runs on `device`: "auto" becomes bf16 where bfloat16 is computed natively (CUDA
    with bf16 support; a CPU whose oneDNN has AVX512-BF16 or AMX kernels), else fp32 (emulated bf16 is slower)."""
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        native = False
    return "bf16" if native else "fp32"


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated on GPU; process peak resident set size on CPU (ru_maxrss is in KiB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recipe:
    """A fine-tuning run: one process, or this rank's part of a distributed one.

    Args:
        config: validated config (paths already resolved, see `resolve_paths`).
        resume: continue the interrupted run of the same name from its last checkpoint.
        show_progress: draw a rich progress bar with ETA.
        on_step: called after every optimizer step with (step, metrics row); tests use it to interrupt runs.
    """

    def __init__(
        self, config: TrainConfig, *, resume: bool = False, show_progress: bool = True, on_step: StepHook | None = None
    ) -> None:
        from core.settings import get_settings

        self.config = config
        self.resume = resume
        self.show_progress = show_progress
        self.on_step = on_step
        runs = config.output.dir or get_settings().runs_dir
        self.name = config.run_name()
        self.final_dir = Path(runs) / self.name
        self.work_dir = Path(runs) / f".{self.name}.partial"
        self.checkpoint = self.work_dir / "checkpoint.pt"
        self.step = 0
        self.fgm: FGM | None = None
        self.world = World()
        self.pipeline: Any = None
        self.accelerator: Any = None
        self.averages = False
        self.metrics: TrainingMetrics | None = None
        self.mixed_precision = "fp32"  # train.mixed_precision as resolved for the device in setup()

    # ----------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        """Validate everything that can fail on bad input, then create (or reopen) the work folder."""
        cfg = self.config
        if self.final_dir.exists() and not cfg.output.overwrite:
            raise ConflictError(f"run folder {self.final_dir} exists; set output.name or output.overwrite=true")
        if self.resume and not self.checkpoint.is_file():
            raise NotFoundError(f"nothing to resume: no checkpoint at {self.checkpoint}; start without --resume")
        if not self.resume and self.work_dir.exists():
            raise ConflictError(
                f"an interrupted run of this config is at {self.work_dir}; continue it with --resume or delete it"
            )
        records = load_records(cfg.dataset.path)[: cfg.dataset.limit]
        train_records, eval_records = ds.split_records(records, cfg.dataset.eval_fraction, cfg.train.seed)
        if cfg.dataset.fraction < 1.0:
            train_records = train_records[: max(cfg.train.batch_size, round(len(train_records) * cfg.dataset.fraction))]

        self.world = World.join(cfg.strategy, cfg.model.device)
        model, self.tokenizer = self._build_model(total_steps=None)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.train_examples = ds.encode_all(
            train_records, self.tokenizer, cfg.dataset.max_length, packing=cfg.dataset.packing
        )
        self.eval_examples = ds.encode_all(eval_records, self.tokenizer, cfg.dataset.max_length) if eval_records else []

        micro = math.ceil(len(self.train_examples) / cfg.train.batch_size)
        self.steps_per_epoch = math.ceil(micro / cfg.train.grad_accum)
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        if cfg.train.max_steps:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)

        self.device = self.world.device
        self.mixed_precision = resolve_mixed_precision(cfg.train.mixed_precision, self.device)
        model, _ = self._build_model(total_steps=self.total_steps, base=model)
        self.model = model.to(self.device, dtype=getattr(torch, cfg.model.dtype))
        self.trainable, self.total_params = count_parameters(self.model)
        self.params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self._distribute()
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            cfg.train.lr_scheduler,
            self.optimizer,
            num_warmup_steps=cfg.train.warmup_steps,
            num_training_steps=self.total_steps,
        )
        if cfg.train.fgm_epsilon > 0:
            self.fgm = FGM(self.model, cfg.train.fgm_epsilon)

        self.world.barrier()  # every rank has checked the folders before rank 0 creates one
        if self.world.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.metrics = TrainingMetrics(self.work_dir, self.name)
        if self.resume:
            self._load_checkpoint()
        elif self.world.is_main:
            (self.work_dir / "config.yaml").write_text(cfg.to_yaml())
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _build_model(self, *, total_steps: int | None, base: Any = None) -> tuple[Any, Any]:
        """Load the base (unless given) and, once `total_steps` is known, apply the method to it."""
        from core.finetune.load import load_base

        cfg = self.config
        tokenizer = None
        if base is None:
            base, tokenizer, self.tokenizer_path = load_base(cfg.model.base)
        if total_steps is None:
            return base, tokenizer
        if cfg.model.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        torch.manual_seed(cfg.train.seed)
        return apply_method(base, cfg.method, tokenizer_path=self.tokenizer_path, total_steps=total_steps), tokenizer

    def _distribute(self) -> None:
        """Wrap the model for the strategy and build the optimizer over what this rank trains."""
        cfg = self.config
        self.module: Any = self.model
        if cfg.strategy.name == "pp":
            from core.finetune.pipeline_parallel import Pipeline

            rows = -(-cfg.train.batch_size // self.world.dp)
            self.pipeline = Pipeline(
                self.model, self.world, rows=rows, width=cfg.dataset.max_length, pad_id=self.pad_id
            )
            self.params_all = self.params
            self.params = self.pipeline.owned(self.params)
            self.optimizer: Any = torch.optim.AdamW(
                [p for _, p in self.params], lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
            )
            return
        from core.finetune.parallelize import prepare

        ds_config = None
        if cfg.strategy.name == "deepspeed":
            from core.finetune.deepspeed_config import deepspeed_config

            ds_config = deepspeed_config(cfg, world_size=self.world.size)
        prepared = prepare(
            self.model, self.world, cfg.strategy, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
            ds_config=ds_config,
        )  # fmt: skip
        self.module, self.optimizer = prepared.module, prepared.optimizer
        self.averages, self.accelerator = prepared.averages, prepared.accelerator
        self.params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]  # FSDP/TP: DTensors

    def _load_checkpoint(self) -> None:
        saved = (self.work_dir / "config.yaml").read_text()
        if not self.config.same_run_as(saved):
            raise ConflictError(
                f"the config differs from the one {self.work_dir} was started with; resume with the same"
            )
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        checkpoint_state.restore(
            self.world, self.module, self.optimizer, state["weights"], state["optimizer"], staged=self._staged
        )
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda_rng"])
        if self.metrics is not None:
            self.metrics.truncate_after(self.step)

    @property
    def _staged(self) -> bool:
        return self.pipeline is not None

    # ----------------------------------------------------------------------------------------------- checkpoint
    def save_checkpoint(self) -> None:
        """Save trainable weights, optimizer, scheduler, step and RNG states (atomically) for --resume.

        Weights and optimizer states are gathered whole by name (checkpoint_state), so any world size resumes them.
        Every rank calls this; rank 0 writes the file.
        """
        if self.config.strategy.name == "deepspeed":
            return  # ZeRO partitions live in DeepSpeed's engine; launch.py refuses --resume for deepspeed
        if self.pipeline is not None:
            self.pipeline.sync_weights(self.params_all)
        gathered = checkpoint_state.gather(self.world, self.module, self.optimizer, staged=self._staged)
        if gathered is not None:
            weights, optimizer = gathered
            state = {
                "weights": weights,
                "optimizer": optimizer,
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "world_size": self.world.size,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            }
            tmp = self.checkpoint.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, self.checkpoint)
        self.world.barrier()
        self.checkpoint_step = self.step

    # ----------------------------------------------------------------------------------------------- training
    def _forward(self, batch: dict[str, torch.Tensor], num_items: int | None = None) -> torch.Tensor:
        """The model's loss: the answer-token mean, or (distributed) the summed loss / `num_items`; under bfloat16
        autocast with train.mixed_precision bf16 (backward follows the dtypes the forward recorded)."""
        bf16 = self.mixed_precision == "bf16"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
            if num_items is None:
                return self.module(**batch).loss.float()
            return self.module(**batch, num_items_in_batch=num_items).loss.float()

    def _optimizer_steps(self) -> Any:
        """Yield lists of micro-batches, one list per optimizer step, from the current step onwards."""
        cfg = self.config.train
        epoch, skip = divmod(self.step, self.steps_per_epoch)
        while True:
            order = ds.epoch_order(len(self.train_examples), cfg.seed, epoch)
            micro = list(ds.batches(self.train_examples, cfg.batch_size, order, self.pad_id))
            groups = [micro[i : i + cfg.grad_accum] for i in range(0, len(micro), cfg.grad_accum)]
            yield from ((epoch, group) for group in groups[skip:])
            epoch, skip = epoch + 1, 0

    def _stop(self, what: str) -> TrainingStopped:
        where = (
            f"last good checkpoint is step {self.checkpoint_step} in {self.work_dir} (continue with --resume)"
            if self.checkpoint.is_file()
            else f"no checkpoint was saved yet; partial output in {self.work_dir}"
        )
        return TrainingStopped(f"step {self.step + 1}: {what}; run stopped, {where}; lower train.lr or check the data")

    def train_step(self, group: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """One optimizer step over `group` micro-batches; returns its metrics row (all ranks' figures combined)."""
        if self.world.distributed:
            return self._distributed_step(group)
        start = time.perf_counter()
        self.model.train()
        loss_sum, tokens, attacked = 0.0, 0, False
        for batch in group:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            tokens += int(batch["attention_mask"].sum())
            loss = self._forward(batch) / len(group)
            if not torch.isfinite(loss):
                raise self._stop(f"training loss is {loss.item()} (not finite)")
            loss.backward()
            loss_sum += loss.item()
            if self.fgm is not None:
                if self.fgm.attack():
                    attacked = True
                    (self._forward(batch) / len(group)).backward()
                self.fgm.restore()
        health = health_of([gradient_squares(self.params)])
        lr = self._apply_gradients(health)
        elapsed = time.perf_counter() - start
        rank = RankStep(0, tokens, elapsed, peak_memory_mb(self.device))
        return self._row(loss_sum, lr, combine([rank]), health, attacked)

    def _distributed_step(self, group: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """This rank's share of one optimizer step; every rank returns the same combined row."""
        start = time.perf_counter()
        self.module.train()
        loss_sum, tokens, attacked = 0.0, 0, False
        scale = self.world.dp if self.averages else 1  # DDP/FSDP/DeepSpeed average gradients over dp ranks
        for batch in group:
            num_items = max(1, int((batch["labels"][:, 1:] != ds.IGNORE).sum()))  # answer tokens, whole micro-batch
            shard = self.world.shard(batch, self.pad_id)
            if bool((shard["labels"] != ds.IGNORE).any()):
                tokens += int(shard["attention_mask"].sum())
            if self.pipeline is not None:
                loss_sum += self.pipeline.step(shard, num_items) / len(group)
                continue
            shard = {k: v.to(self.device) for k, v in shard.items()}
            loss = self._forward(shard, num_items)
            self._backward(loss * scale / len(group))
            loss_sum += loss.item() / len(group)
            if self.fgm is not None:
                if self.fgm.attack():
                    attacked = True
                    self._backward(self._forward(shard, num_items) * scale / len(group))
                self.fgm.restore()
        if self.pipeline is not None:
            loss_total = self.world.sum(loss_sum)  # only last-stage ranks hold a share
            self._sum_over_dp()
            parts = self.world.gather((self.world.coordinate("dp"), gradient_squares(self.params)))
            health = health_of(part for dp, part in parts if dp == 0)
        else:
            loss_total = self.world.sum(loss_sum, "dp")
            health = health_of([gradient_squares(self._grad_view())])
        if not math.isfinite(loss_total):
            raise self._stop(f"training loss is {loss_total} (not finite)")
        lr = self._apply_gradients(health)
        elapsed = time.perf_counter() - start
        counts = self.world.coordinate("tp") == 0 and self.world.coordinate("pp") == 0
        mine = RankStep(self.world.rank, tokens, elapsed, peak_memory_mb(self.device), counts_tokens=counts)
        ranks = [RankStep(**part) for part in self.world.gather(as_dict(mine))]
        return self._row(loss_total, lr, combine(ranks), health, attacked)

    def _backward(self, loss: torch.Tensor) -> None:
        if self.config.strategy.name == "deepspeed":
            self.module.backward(loss)  # the DeepSpeed engine (accelerate prepared it); it steps in _apply_gradients
        else:
            loss.backward()

    def _grad_view(self) -> list[tuple[str, Any]]:
        """Named objects whose `.grad` is the whole gradient (ZeRO keeps partitions; DeepSpeed gathers them)."""
        if self.config.strategy.name != "deepspeed":
            return self.params
        from types import SimpleNamespace

        from deepspeed.utils import safe_get_full_grad

        return [(n, SimpleNamespace(grad=safe_get_full_grad(p))) for n, p in self.params]

    def _sum_over_dp(self) -> None:
        """Pipeline + data parallel: each replica's stage gradients are summed over the dp group."""
        if self.world.dp == 1:
            return
        import torch.distributed as dist

        for _, param in self.params:
            if param.grad is not None:
                dist.all_reduce(param.grad, group=self.world.group("dp"))

    def _apply_gradients(self, health: GradientHealth) -> float:
        """Stop on non-finite gradients, clip to train.max_grad_norm, step optimizer and schedule; returns the lr."""
        if not health.finite:
            raise self._stop("gradients are not finite")
        lr = self.scheduler.get_last_lr()[0]
        if self.config.strategy.name == "deepspeed":
            self.module.step()  # clipping is DeepSpeed's (gradient_clipping in its config)
        else:
            coef = self.config.train.max_grad_norm / (health.total_norm + 1e-6)
            if coef < 1.0:  # the total norm is over every rank's parameters, so all ranks clip alike
                with torch.no_grad():
                    for _, param in self.params:
                        if param.grad is not None:
                            param.grad.mul_(coef)
            self.optimizer.step()
            if self.config.method.name == "adalora":
                peft_model: Any = self.model
                peft_model.base_model.update_and_allocate(self.step)  # AdaLoRA's rank budget schedule
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return lr

    def _row(
        self, loss: float, lr: float, ranks: dict[str, Any], health: GradientHealth, attacked: bool
    ) -> dict[str, Any]:
        return {
            "step": self.step + 1,
            "loss": loss,
            "lr": lr,
            **ranks,
            "grad_norm": health.total_norm,
            "layer_grad_norm": health.layer_norms,
            "vanishing_ratio": health.vanishing_ratio,
            "tiny_grad_share": health.tiny_grad_share,
            "fgm": attacked,
        }

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Token-weighted mean loss on the eval split (None without one)."""
        if not self.eval_examples:
            return None
        # Every rank evaluates the whole split (sharded models need all ranks in each forward); pipeline stages
        # first share their trained weights and then run the unsplit model.
        if self.pipeline is not None:
            self.pipeline.sync_weights(self.params_all)
        module = self.model if self.pipeline is not None else self.module
        module.eval()
        total, count = 0.0, 0
        order = list(range(len(self.eval_examples)))
        for batch in ds.batches(self.eval_examples, self.config.eval.batch_size, order, self.pad_id):
            n = int((batch["labels"][:, 1:] != ds.IGNORE).sum())
            batch = {k: v.to(self.device) for k, v in batch.items()}
            total += float(module(**batch).loss) * n
            count += n
        module.train()
        return total / count if count else None

    def train(self) -> None:
        """Run optimizer steps until total_steps; Ctrl-C saves a checkpoint and raises TrainingInterrupted."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.checkpoint_step = self.step if self.resume else 0
        progress = Progress(
            TextColumn(f"[bold]{self.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not self.show_progress,
        )
        every = self.config.eval.every_steps
        with progress:
            task = progress.add_task("train", total=self.total_steps, completed=self.step, info="")
            try:
                for epoch, group in self._optimizer_steps():
                    if self.step >= self.total_steps:
                        break
                    row = self.train_step(group)
                    self.step += 1
                    row["epoch"] = epoch
                    if every and self.step % every == 0 and self.step < self.total_steps:
                        row["eval_loss"] = self.evaluate()
                    if self.metrics is not None:
                        self.metrics.log(row)
                    progress.update(task, completed=self.step, info=f"loss {row['loss']:.4f}")
                    if self.step % self.config.train.save_steps == 0 and self.step < self.total_steps:
                        self.save_checkpoint()
                    if self.on_step is not None:
                        self.on_step(self.step, row)
            except KeyboardInterrupt:
                self.save_checkpoint()
                raise TrainingInterrupted(
                    f"interrupted at step {self.step}: checkpoint saved in {self.work_dir}; "
                    "continue with `finmed train CONFIG --resume`"
                ) from None

    # ----------------------------------------------------------------------------------------------- finish
    def finish(self) -> Path:
        """Evaluate, write weights, tokenizer, eval.json and loss.png, then rename the work folder into place."""
        import json

        from core.finetune.plot import plot_loss

        eval_loss = self.evaluate()
        if self.fgm is not None:
            self.fgm.close()
            self.fgm = None
        model = self._whole_model()
        if not self.world.is_main or self.metrics is None:
            self.world.barrier()  # rank 0 renames the folder into place
            return self.final_dir
        rows = self.metrics.rows()
        train_rows = [r for r in rows if "loss" in r]
        final_row = {"step": self.step, "eval_loss": eval_loss, "final": True}
        self.metrics.log(final_row)
        save_trained(model, self.config.method.name, self.work_dir)
        self.tokenizer.save_pretrained(self.work_dir / "tokenizer")
        report = {
            "eval_loss": eval_loss,
            "perplexity": math.exp(eval_loss) if eval_loss is not None and eval_loss < 50 else None,
            "eval_examples": len(self.eval_examples),
            "train_examples": len(self.train_examples),
            "steps": self.step,
            "first_train_loss": train_rows[0]["loss"] if train_rows else None,
            "last_train_loss": train_rows[-1]["loss"] if train_rows else None,
            "method": self.config.method.name,
            "mixed_precision": self.mixed_precision,
            "base": self.config.model.base,
            "trainable_params": self.trainable,
            "total_params": self.total_params,
            "trainable_share": self.trainable / self.total_params,
        }
        (self.work_dir / "eval.json").write_text(json.dumps(report, indent=2))
        plot_loss([*rows, final_row], self.work_dir / "loss.png", title=self.name)
        self.checkpoint.unlink(missing_ok=True)
        if self.final_dir.exists():
            shutil.rmtree(self.final_dir)
        self.work_dir.rename(self.final_dir)
        self.world.barrier()
        return self.final_dir

    def _whole_model(self) -> Any:
        """The trained model whole, on CPU in float32, on rank 0 (None elsewhere). Every rank calls it.

        Plain, DDP and pipeline models are whole on rank 0 already (stages synced at evaluate); sharded ones (FSDP,
        tensor parallel, ZeRO) are gathered by name into a freshly built copy of the model.
        """
        if self.config.strategy.name == "deepspeed":
            weights = self.accelerator.get_state_dict(self.module)  # ZeRO-3: gathered 16-bit weights on rank 0
        elif self.config.strategy.name in ("fsdp", "tp") or self.world.tp > 1:
            gathered = checkpoint_state.gather(self.world, self.module, self.optimizer)
            weights = gathered[0] if gathered else None
        else:
            return self.model.to("cpu", dtype=torch.float32) if self.world.is_main else None
        if not self.world.is_main:
            return None
        fresh, _ = self._build_model(total_steps=self.total_steps, base=self._build_model(total_steps=None)[0])
        trainable = {n for n, p in fresh.named_parameters() if p.requires_grad}
        missing = fresh.load_state_dict({k: v for k, v in weights.items() if k in trainable}, strict=False)
        if set(missing.missing_keys) & trainable:
            raise FinmedError(f"gathered weights lack {sorted(set(missing.missing_keys) & trainable)[:3]}")
        return fresh.to("cpu", dtype=torch.float32)

    def close(self) -> None:
        """Leave the process group (distributed runs)."""
        self.world.close()

    def cleanup(self) -> None:
        """Undo FGM's requires_grad change if the run ended early."""
        if self.fgm is not None:
            self.fgm.close()


def run_recipe(
    config: TrainConfig, *, resume: bool = False, show_progress: bool = True, on_step: StepHook | None = None
) -> Path:
    """Run one plain fine-tune (no pilot) on a config whose paths are resolved; returns the finished run folder.

    Callers use core.finetune.run.run_training, which resolves paths and chooses plain or progressive; it lists
    what this raises.
    """
    recipe = Recipe(config, resume=resume, show_progress=show_progress, on_step=on_step)
    try:
        recipe.setup()
        recipe.train()
        return recipe.finish()
    finally:
        recipe.cleanup()
        recipe.close()
