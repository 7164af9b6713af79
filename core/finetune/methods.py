"""Turn a base model into a trainable one for a method name: peft tuners, our bottleneck adapters, or full.

Every peft method goes through `peft.get_peft_model` with the config built here from the method's own section of
`core.finetune.config`; `adapter` uses `core.finetune.bottleneck`; `full` trains every weight. `save_trained`
writes what `core.finetune.load` reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from core.errors import ValidationError
from core.finetune import bottleneck
from core.finetune.config import (
    AdaLoraMethod,
    AdapterMethod,
    IA3Method,
    LoraMethod,
    MethodSection,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
)

PEFT_METHODS = ("lora", "dora", "adalora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning")


def peft_config(method: MethodSection, *, tokenizer_path: str, total_steps: int) -> Any:
    """The peft config for `method` (task CAUSAL_LM).

    Args:
        method: the validated method section.
        tokenizer_path: folder of the tokenizer (prompt_tuning's TEXT initialisation reads it).
        total_steps: optimizer steps of the run (AdaLoRA schedules its rank budget over them).
    """
    import peft

    task = peft.TaskType.CAUSAL_LM
    if isinstance(method, LoraMethod | AdaLoraMethod):
        target = method.lora_target if method.lora_target == "all-linear" else list(method.lora_target)
        lora_args: dict[str, Any] = dict(
            r=method.lora_r,
            lora_alpha=method.lora_alpha,
            lora_dropout=method.lora_dropout,
            target_modules=target,
            bias=method.lora_bias,
            task_type=task,
        )
        if method.lora_layers is not None:
            lora_args.update(layers_to_transform=list(method.lora_layers), layers_pattern="layers")
        if isinstance(method, LoraMethod):
            return peft.LoraConfig(**lora_args, use_dora=method.name == "dora")
        lora_args.pop("r")
        # Budget schedule: warm up 10%, prune until the last 20%, reallocate every step in between.
        tinit, tfinal = max(1, total_steps // 10), max(1, total_steps // 5)
        if total_steps <= tinit + tfinal:
            raise ValidationError(
                f"method.name=adalora needs more than {tinit + tfinal} steps (this run has {total_steps})"
            )
        return peft.AdaLoraConfig(
            **lora_args,
            init_r=method.lora_r,
            target_r=method.adalora_target_r,
            total_step=total_steps,
            tinit=tinit,
            tfinal=tfinal,
            deltaT=1,
        )
    if isinstance(method, IA3Method):
        return peft.IA3Config(task_type=task)  # peft's Llama defaults: k_proj, v_proj, down_proj
    if isinstance(method, PromptTuningMethod):
        return peft.PromptTuningConfig(
            task_type=task,
            num_virtual_tokens=method.num_virtual_tokens,
            prompt_tuning_init=peft.PromptTuningInit.TEXT,
            prompt_tuning_init_text=method.prompt_init_text,
            tokenizer_name_or_path=tokenizer_path,
        )
    if isinstance(method, PrefixTuningMethod):
        return peft.PrefixTuningConfig(task_type=task, num_virtual_tokens=method.num_virtual_tokens)
    if isinstance(method, PTuningMethod):
        return peft.PromptEncoderConfig(
            task_type=task, num_virtual_tokens=method.num_virtual_tokens, encoder_hidden_size=method.encoder_hidden_size
        )
    raise ValueError(f"{method.name} is not a peft method")


def apply_method(model: nn.Module, method: MethodSection, *, tokenizer_path: str, total_steps: int) -> nn.Module:
    """Return the model to train: frozen base plus trainable method weights (or all weights for `full`).

    Raises:
        ValidationError: the method does not fit this model (message names method.name).
    """
    if method.name == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    if isinstance(method, AdapterMethod):
        try:
            bottleneck.inject_adapters(
                model, size=method.adapter_size, activation=method.adapter_activation, dropout=method.adapter_dropout
            )
        except ValueError as exc:
            raise ValidationError(f"method.name=adapter: {exc}") from None
        return model
    import peft

    if isinstance(method, LoraMethod | AdaLoraMethod) and method.lora_layers is not None:
        method = method.model_copy(update={"lora_layers": resolve_layers(method.lora_layers, _depth(model))})
    try:
        return peft.get_peft_model(model, peft_config(method, tokenizer_path=tokenizer_path, total_steps=total_steps))
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            f"method.name={method.name}: peft cannot apply it here: {str(exc).splitlines()[0]}"
        ) from None


def _depth(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    depth = getattr(getattr(config, "text_config", config), "num_hidden_layers", None)
    if not isinstance(depth, int):
        raise ValidationError("method.lora_layers: this model does not say how many decoder layers it has")
    return depth


def resolve_layers(layers: list[int], depth: int) -> list[int]:
    """Decoder layer indices of method.lora_layers on a model of `depth` layers; negative ones count from the top
    (-1 is the last), so a config such as "the top 12 layers" fits bases of any depth.

    Raises:
        ValidationError: an index outside the model, or one layer named twice.
    """
    resolved = [i + depth if i < 0 else i for i in layers]
    bad = [given for given, i in zip(layers, resolved, strict=True) if not 0 <= i < depth]
    if bad:
        raise ValidationError(
            f"method.lora_layers: layer {bad[0]} does not exist: this model has {depth} decoder layers "
            f"(0 to {depth - 1}, or -{depth} to -1 from the top)"
        )
    if len(set(resolved)) != len(resolved):
        raise ValidationError(f"method.lora_layers: {layers} names a layer twice on a model of {depth} layers")
    return sorted(resolved)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights are counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def save_trained(model: Any, method: str, folder: Path) -> None:
    """Write the trained part: `adapter/` (peft or bottleneck) or `model/` (full weights)."""
    if method == "full":
        model.save_pretrained(folder / "model")
    elif method == "adapter":
        bottleneck.save_adapters(model, folder / "adapter")
    else:
        model.save_pretrained(folder / "adapter")
