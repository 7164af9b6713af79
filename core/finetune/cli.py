"""`finmed train CONFIG.yaml [--set key=value ...] [--resume] [--strategy S --nproc N ...]`: one fine-tuning run
from a YAML config, in this process or launched through torchrun over several processes and nodes."""

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
    strategy: str | None = typer.Option(
        None, "--strategy", help="single, ddp, fsdp, deepspeed, tp or pp (same as strategy.name in the YAML)."
    ),
    nproc: int | None = typer.Option(None, "--nproc", help="Processes on this node (strategy.nproc)."),
    nnodes: int | None = typer.Option(None, "--nnodes", help="Nodes taking part (strategy.nnodes)."),
    node_rank: int | None = typer.Option(None, "--node-rank", help="This node's index (strategy.node_rank)."),
    master_addr: str | None = typer.Option(None, "--master-addr", help="Node 0's address (strategy.master_addr)."),
    master_port: int | None = typer.Option(None, "--master-port", help="Rendezvous port (strategy.master_port)."),
    tp: int | None = typer.Option(None, "--tp", help="Tensor-parallel degree (strategy.tp)."),
    pp: int | None = typer.Option(None, "--pp", help="Pipeline stages (strategy.pp)."),
    dp: int | None = typer.Option(None, "--dp", help="Data-parallel degree (strategy.dp)."),
) -> None:
    """Fine-tune a base model (LoRA, adapters, prompt tuning, full, ...) and write a run folder.

    The run folder holds config.yaml (as resolved), the adapter or weights, the tokenizer, metrics.jsonl,
    metrics.prom, eval.json and loss.png. Ctrl-C saves a checkpoint; continue with --resume.

    With --strategy ddp|fsdp|deepspeed|tp|pp and --nproc N the run is started through torchrun (Gloo on CPU,
    NCCL on CUDA); a launch that cannot run here is refused before any process starts. Only rank 0 writes.
    """
    from core.finetune.config import load_config
    from core.finetune.run import run_training

    flags = {"name": strategy, "nproc": nproc, "nnodes": nnodes, "node_rank": node_rank}
    flags |= {"master_addr": master_addr, "master_port": master_port, "tp": tp, "pp": pp, "dp": dp}
    launch_sets = [f"strategy.{key}={value}" for key, value in flags.items() if value is not None]
    train_config = load_config(config, [*overrides, *launch_sets])
    if train_config.strategy.name != "single" or train_config.strategy.nproc * train_config.strategy.nnodes > 1:
        from core.finetune.launch import launch
        from core.finetune.recipe import resolve_paths

        run_dir = launch(resolve_paths(train_config), resume=resume)
    else:
        run_dir = run_training(train_config, resume=resume, show_progress=not quiet)
    report = json.loads((run_dir / "eval.json").read_text())
    share = 100 * report["trainable_share"]
    console.print(
        f"run written to {run_dir}\n"
        f"method {report['method']}: {report['trainable_params']:,} trainable parameters ({share:.3f}%), "
        f"{report['steps']} steps, train loss {report['first_train_loss']:.4f} -> {report['last_train_loss']:.4f}, "
        f"eval loss {report['eval_loss'] if report['eval_loss'] is None else round(report['eval_loss'], 4)}"
    )
