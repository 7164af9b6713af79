"""`finmed train CONFIG.yaml [--set key=value ...] [--resume]`: one fine-tuning run from a YAML config."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from core.console import console


def train(
    config: Path = typer.Argument(..., help="YAML run config (see configs/train-*.yaml and core/finetune/config.py)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override one key, e.g. --set train.lr=1e-4 --set method.name=adapter (repeatable)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of this config."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fine-tune a base model (LoRA, adapters, prompt tuning, full, ...) and write a run folder.

    The run folder holds config.yaml (as resolved), the adapter or weights, the tokenizer, metrics.jsonl,
    metrics.prom, eval.json and loss.png. Ctrl-C saves a checkpoint; continue with --resume.
    """
    from core.finetune.config import load_config
    from core.finetune.run import run_training

    run_dir = run_training(load_config(config, overrides), resume=resume, show_progress=not quiet)
    report = json.loads((run_dir / "eval.json").read_text())
    share = 100 * report["trainable_share"]
    console.print(
        f"run written to {run_dir}\n"
        f"method {report['method']}: {report['trainable_params']:,} trainable parameters ({share:.3f}%), "
        f"{report['steps']} steps, train loss {report['first_train_loss']:.4f} -> {report['last_train_loss']:.4f}, "
        f"eval loss {report['eval_loss'] if report['eval_loss'] is None else round(report['eval_loss'], 4)}"
    )
