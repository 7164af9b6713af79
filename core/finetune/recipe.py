"""One fine-tuning run as a readable recipe (torchtune style): setup(), train(), save_checkpoint(), finish().

Why a hand-written loop rather than `transformers.Trainer`: the run needs an FGM second pass inside each step,
gradient health measured between backward and clipping, per-step Prometheus output and a checkpoint format
whose resume is bit-for-bit the uninterrupted run (data order is a pure function of seed and epoch, RNG states
are saved); all of it reads more plainly as ~300 lines here than as Trainer subclass overrides. The pieces
themselves come from libraries: models from transformers, methods from peft, AdamW and schedules from
torch/transformers, metrics from prometheus_client.

The run is written into `<runs>/.<name>.partial/` and renamed to `<runs>/<name>/` only when it is complete.
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
from core.finetune import dataset as ds
from core.finetune.config import TrainConfig
from core.finetune.fgm import FGM
from core.finetune.methods import apply_method, count_parameters, save_trained
from core.monitoring.gradient_health import gradient_health
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


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated on GPU; process peak resident set size on CPU (ru_maxrss is in KiB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recipe:
    """A single-device fine-tuning run.

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

        from core.finetune.load import load_base

        model, self.tokenizer, tokenizer_path = load_base(cfg.model.base)
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

        want = cfg.model.device
        self.device = torch.device(
            "cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu"
        )
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        torch.manual_seed(cfg.train.seed)
        model = apply_method(model, cfg.method, tokenizer_path=tokenizer_path, total_steps=self.total_steps)
        self.model = model.to(self.device, dtype=getattr(torch, cfg.model.dtype))
        self.trainable, self.total_params = count_parameters(self.model)
        self.params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            [p for _, p in self.params], lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            cfg.train.lr_scheduler,
            self.optimizer,
            num_warmup_steps=cfg.train.warmup_steps,
            num_training_steps=self.total_steps,
        )
        if cfg.train.fgm_epsilon > 0:
            self.fgm = FGM(self.model, cfg.train.fgm_epsilon)

        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = TrainingMetrics(self.work_dir, self.name)
        if self.resume:
            self._load_checkpoint()
        else:
            (self.work_dir / "config.yaml").write_text(cfg.to_yaml())
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _load_checkpoint(self) -> None:
        saved = (self.work_dir / "config.yaml").read_text()
        if saved != self.config.to_yaml():
            raise ConflictError(
                f"the config differs from the one {self.work_dir} was started with; resume with the same"
            )
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        own = dict(self.params)
        with torch.no_grad():
            for name, tensor in state["weights"].items():
                own[name].copy_(tensor)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.metrics.truncate_after(self.step)

    # ----------------------------------------------------------------------------------------------- checkpoint
    def save_checkpoint(self) -> None:
        """Save trainable weights, optimizer, scheduler, step and RNG states (atomically) for --resume."""
        state = {
            "weights": {name: p.detach().clone() for name, p in self.params},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
        }
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)
        self.checkpoint_step = self.step

    # ----------------------------------------------------------------------------------------------- training
    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss

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
        """One optimizer step over `group` micro-batches; returns its metrics row."""
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
        health = gradient_health(self.params)
        if not health.finite:
            raise self._stop("gradients are not finite")
        torch.nn.utils.clip_grad_norm_([p for _, p in self.params], self.config.train.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        if self.config.method.name == "adalora":
            peft_model: Any = self.model
            peft_model.base_model.update_and_allocate(self.step)  # AdaLoRA's rank budget schedule
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        elapsed = time.perf_counter() - start
        return {
            "step": self.step + 1,
            "loss": loss_sum,
            "lr": lr,
            "tokens": tokens,
            "step_time_s": elapsed,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
            "peak_mem_mb": peak_memory_mb(self.device),
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
        self.model.eval()
        total, count = 0.0, 0
        order = list(range(len(self.eval_examples)))
        for batch in ds.batches(self.eval_examples, self.config.eval.batch_size, order, self.pad_id):
            n = int((batch["labels"][:, 1:] != ds.IGNORE).sum())
            batch = {k: v.to(self.device) for k, v in batch.items()}
            total += float(self._forward(batch)) * n
            count += n
        self.model.train()
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
        rows = self.metrics.rows()
        train_rows = [r for r in rows if "loss" in r]
        final_row = {"step": self.step, "eval_loss": eval_loss, "final": True}
        self.metrics.log(final_row)
        if self.fgm is not None:
            self.fgm.close()
            self.fgm = None
        model = self.model.to("cpu", dtype=torch.float32)
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
        return self.final_dir

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
