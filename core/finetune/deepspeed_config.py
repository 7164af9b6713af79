"""The DeepSpeed JSON of a run, generated from the YAML block `strategy.deepspeed: {stage, offload_params,
offload_optimizer}` and checked by DeepSpeed's own config classes (`deepspeed.runtime.config.DeepSpeedConfig`)
before anything is launched.

The recipe accumulates gradients and schedules the learning rate itself (as in every other strategy), so the JSON
has no optimizer or scheduler section: DeepSpeed wraps the recipe's AdamW (`zero_force_ds_cpu_optimizer: false`
lets a torch optimizer run with optimizer offload) and clips at train.max_grad_norm.
"""

from __future__ import annotations

import math
from typing import Any

from core.errors import ValidationError
from core.finetune.config import TrainConfig


def deepspeed_config(config: TrainConfig, *, world_size: int) -> dict[str, Any]:
    """DeepSpeed's JSON (as a dict) for `config` on `world_size` data-parallel ranks."""
    block = config.strategy.deepspeed
    zero: dict[str, Any] = {"stage": block.stage, "overlap_comm": True, "contiguous_gradients": True}
    if block.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if block.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if block.stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # rank 0 can write whole weights at the end
    micro = math.ceil(config.train.batch_size / world_size)
    dtype = config.model.dtype
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": 1,  # train_batch_size is left to DeepSpeed: micro x accumulation x world
        "gradient_clipping": config.train.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def validate(ds_config: dict[str, Any]) -> Any:
    """Parse `ds_config` with DeepSpeed's DeepSpeedConfig; returns the parsed object.

    Raises:
        ValidationError: DeepSpeed is not installed, or it rejects the config (its message, first line).
    """
    try:
        from deepspeed.runtime.config import DeepSpeedConfig
    except ImportError:
        raise ValidationError(
            "strategy.name=deepspeed needs the deepspeed package: pip install 'finmed[deepspeed]'"
        ) from None
    try:
        return DeepSpeedConfig(ds_config)
    except Exception as exc:  # DeepSpeed raises pydantic errors, AssertionError and ValueError alike
        first = str(exc).strip().splitlines()
        raise ValidationError(f"DeepSpeed rejects the generated config: {' '.join(first[:3])}") from None
