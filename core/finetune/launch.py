"""Start a distributed fine-tune with torchrun (`torch.distributed.run`), after checking everything that would make
it fail once the processes are up.

Every refusal is one line naming the setting: more processes than cores (or GPUs), tp not dividing the attention
heads, more pipeline stages than layers, a multi-node run without a master address, DeepSpeed without CUDA, and
combinations this build does not run. The workers run `python -m core.finetune.worker` on the resolved config.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.errors import FinmedError, ValidationError
from core.finetune.config import PROMPT_METHODS, TrainConfig
from core.finetune.distributed import degrees

# Methods each strategy trains (ddp replicates whatever the method is; the others touch the decoder layers).
METHODS_OF = {
    "ddp": None,
    "fsdp": ("full", "lora", "dora", "ia3"),
    "deepspeed": ("full", "lora", "dora", "ia3"),
    "tp": ("full", "lora"),
    "pp": ("full", "lora", "dora", "ia3", "adapter"),
}


class LaunchFailed(FinmedError):
    """A worker process exited with an error (its output is above)."""


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def model_shape(base: str) -> dict[str, Any]:
    """Layer and head counts of the base model (from its config.json; a run folder's base is followed)."""
    from transformers import AutoConfig

    from core.finetune.load import is_run_folder, read_run_config
    from core.models.resolve import resolve_model
    from core.settings import get_settings

    path = Path(base).expanduser()
    while base != "default" and is_run_folder(path):
        base = read_run_config(path).model.base
        path = Path(base).expanduser()
    hf = AutoConfig.from_pretrained(resolve_model(base, get_settings().models_dir).source)
    return {
        "layers": hf.num_hidden_layers,
        "heads": hf.num_attention_heads,
        "kv_heads": getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads,
        "intermediate": hf.intermediate_size,
        "tied": bool(getattr(hf, "tie_word_embeddings", False)),
    }


def check_launch(config: TrainConfig, *, cuda: bool | None = None, cores: int | None = None) -> None:
    """Refuse a launch that cannot run here, before any process starts.

    Args:
        cuda: whether CUDA is usable (default: ask torch).
        cores: CPU cores allowed (default: this process's affinity).

    Raises:
        ValidationError: one line naming the setting and what would fix it.
    """
    import torch

    s = config.strategy
    cuda = torch.cuda.is_available() and config.model.device != "cpu" if cuda is None else cuda
    cores = usable_cores() if cores is None else cores
    method = config.method.name
    if s.name == "single":
        if s.nproc * s.nnodes > 1:
            raise ValidationError(f"strategy.nproc={s.nproc}: choose strategy ddp, fsdp, deepspeed, tp or pp as well")
        return
    if s.name == "deepspeed" and not cuda:
        raise ValidationError(
            "strategy deepspeed needs CUDA (DeepSpeed ZeRO trains on GPUs) and none is available here; "
            "on CPU use --strategy fsdp --set strategy.fsdp_cpu_offload=true"
        )
    if cuda and s.nproc > torch.cuda.device_count():
        raise ValidationError(f"--nproc {s.nproc} is more than the {torch.cuda.device_count()} GPUs of this node")
    if not cuda and s.nproc > cores:
        raise ValidationError(f"--nproc {s.nproc} is more than the {cores} CPU cores this process may use")
    if s.nnodes > 1 and not s.master_addr:
        raise ValidationError(f"--nnodes {s.nnodes} needs --master-addr (the address of node 0) on every node")
    world = s.nproc * s.nnodes
    pp, dp, tp = degrees(s, world)
    if pp * dp * tp != world:
        raise ValidationError(f"tp {tp} x pp {pp} x dp {dp} = {pp * dp * tp} processes, but the world has {world}")
    if tp > 1 and pp > 1:
        raise ValidationError("tp and pp together (3D) are not supported by finmed's recipe; use tp x dp or pp x dp")
    if (tp > 1 and s.name not in ("tp", "fsdp")) or (pp > 1 and s.name != "pp"):
        raise ValidationError(f"strategy {s.name} cannot take tp/pp degrees; use --strategy tp or --strategy pp")
    allowed = METHODS_OF[s.name]
    if allowed is not None and method not in allowed:
        raise ValidationError(
            f"method.name={method} cannot be trained with strategy {s.name}; it supports {', '.join(allowed)}"
        )
    if method == "adalora" or (config.train.fgm_epsilon > 0 and s.name != "ddp"):
        what = "method.name=adalora" if method == "adalora" else "train.fgm_epsilon"
        raise ValidationError(f"{what} runs on one process or (fgm) with ddp only, not with strategy {s.name}")
    if s.name == "deepspeed" and config.train.grad_accum != 1:
        raise ValidationError("strategy deepspeed: set train.grad_accum=1 (DeepSpeed counts accumulation itself)")
    if method in PROMPT_METHODS and s.name != "ddp":
        raise ValidationError(f"prompt method {method} runs with ddp only (virtual tokens sit before the layers)")
    if s.name == "deepspeed":
        from core.finetune.deepspeed_config import deepspeed_config, validate

        validate(deepspeed_config(config, world_size=world))
    if tp > 1 or pp > 1:
        shape = model_shape(config.model.base)
        if tp > 1:
            from core.finetune.tensor_parallel import check_divides

            check_divides(tp, heads=shape["heads"], kv_heads=shape["kv_heads"], intermediate=shape["intermediate"])
        if pp > shape["layers"]:
            raise ValidationError(f"--pp {pp} is more pipeline stages than the model's {shape['layers']} layers")
        if pp > 1 and shape["tied"] and method == "full":
            raise ValidationError("strategy pp with method full: this model ties its embeddings to the LM head, "
                                  "which would sit on two stages; use method lora")  # fmt: skip


def torchrun_argv(config: TrainConfig, config_file: Path, *, resume: bool, extra: list[str] | None = None) -> list[str]:
    """The command line that starts the workers (one node: torchrun --standalone picks a free port)."""
    s = config.strategy
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={s.nproc}", f"--nnodes={s.nnodes}"]
    if s.nnodes == 1 and s.master_addr is None:
        argv.append("--standalone")
    else:
        argv += [f"--node-rank={s.node_rank}", f"--master-addr={s.master_addr}", f"--master-port={s.master_port}"]
    argv += ["-m", "core.finetune.worker", str(config_file)]
    return argv + (["--resume"] if resume else []) + (extra or [])


def launch(config: TrainConfig, *, resume: bool = False, extra: list[str] | None = None) -> Path:
    """Check, then run the workers under torchrun and wait; returns the finished run folder (rank 0 wrote it).

    Args:
        config: resolved config (core.finetune.recipe.resolve_paths).
        extra: more worker arguments (tests: `--stop-after N`).

    Raises:
        ValidationError: the launch cannot run here (nothing was started).
        LaunchFailed: a worker failed.
    """
    from core.finetune.recipe import Recipe

    check_launch(config)
    with tempfile.TemporaryDirectory(prefix="finmed-launch-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(config.to_yaml())
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(torchrun_argv(config, config_file, resume=resume, extra=extra), env=env, check=False)
    if done.returncode != 0:
        raise LaunchFailed(f"distributed run failed (torchrun exit {done.returncode}); the workers' errors are above")
    return Recipe(config, show_progress=False).final_dir
