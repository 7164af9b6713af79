"""The typed schema of a training run: flat YAML sections model / method / dataset / train / eval / output / strategy.

In the spirit of LLaMA-Factory's configs: every key lives in one of six flat sections, unknown keys and wrong
types are rejected with the key's name, and `--set a.b=c` overrides go through the same validation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from core.errors import NotFoundError, ValidationError

METHODS = ("full", "lora", "dora", "adalora", "ia3", "adapter", "prompt_tuning", "prefix_tuning", "p_tuning")
PROMPT_METHODS = ("prompt_tuning", "prefix_tuning", "p_tuning")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    base: str = Field(
        "default",
        description="'default' (SmolLM2-135M-Instruct), a model folder, a hub id (local cache only), or a previous "
        "run folder: its adapter is applied (and merged where possible) before this run's method.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights and compute dtype.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' picks CUDA when available.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for activation memory.")


class _LoraFields(_Section):
    lora_r: int = Field(16, ge=1, description="LoRA/DoRA rank (AdaLoRA: initial rank).")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    lora_target: list[str] | Literal["all-linear"] = Field(
        ["q_proj", "v_proj"], description="Module names to adapt, or 'all-linear'."
    )
    lora_layers: list[int] | None = Field(
        None,
        description="Only these decoder layer indices get LoRA (None: all); negative ones count from the top (-1 "
        "is the last). The top layers alone cost far less to train: the backward pass stops below the lowest "
        "adapted layer.",
    )
    lora_bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases train with LoRA.")


class LoraMethod(_LoraFields):
    """LoRA, or DoRA (weight-decomposed LoRA) on the same fields."""

    name: Literal["lora", "dora"] = Field("lora", description="Fine-tuning method.")


class AdaLoraMethod(_LoraFields):
    """AdaLoRA: LoRA whose rank budget is reallocated during training."""

    name: Literal["adalora"] = Field("adalora", description="Fine-tuning method.")
    adalora_target_r: int = Field(8, ge=1, description="AdaLoRA: average rank after budget allocation.")


class FullMethod(_Section):
    """Every weight trains."""

    name: Literal["full"] = Field("full", description="Fine-tuning method.")


class IA3Method(_Section):
    """IA3: learned rescaling vectors on peft's Llama defaults (k_proj, v_proj, down_proj)."""

    name: Literal["ia3"] = Field("ia3", description="Fine-tuning method.")


class AdapterMethod(_Section):
    """Bottleneck adapter layers (core/finetune/bottleneck.py)."""

    name: Literal["adapter"] = Field("adapter", description="Fine-tuning method.")
    adapter_size: int = Field(64, ge=1, description="Bottleneck width of adapter layers.")
    adapter_activation: Literal["relu", "gelu", "silu"] = Field("relu", description="Adapter non-linearity.")
    adapter_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout inside adapter layers.")


class PromptTuningMethod(_Section):
    """A soft prompt of learned virtual-token embeddings before every input."""

    name: Literal["prompt_tuning"] = Field("prompt_tuning", description="Fine-tuning method.")
    num_virtual_tokens: int = Field(20, ge=1, description="Soft prompt length.")
    prompt_init_text: str = Field(
        "Read the request carefully and answer in the exact format asked for.",
        description="Text whose token embeddings initialise the soft prompt.",
    )


class PrefixTuningMethod(_Section):
    """Learned key/value prefixes in every attention layer."""

    name: Literal["prefix_tuning"] = Field("prefix_tuning", description="Fine-tuning method.")
    num_virtual_tokens: int = Field(20, ge=1, description="Prefix length.")


class PTuningMethod(_Section):
    """P-tuning: virtual tokens produced by a small prompt-encoder MLP."""

    name: Literal["p_tuning"] = Field("p_tuning", description="Fine-tuning method.")
    num_virtual_tokens: int = Field(20, ge=1, description="Soft prompt length.")
    encoder_hidden_size: int = Field(128, ge=1, description="Prompt encoder MLP width.")


# One model per method, chosen by `name`: a field that does not apply to the chosen method is an error naming it.
MethodSection = Annotated[
    LoraMethod
    | AdaLoraMethod
    | FullMethod
    | IA3Method
    | AdapterMethod
    | PromptTuningMethod
    | PrefixTuningMethod
    | PTuningMethod,
    Field(discriminator="name"),
]


class DatasetSection(_Section):
    path: Path = Field(..., description="JSONL records (messages, alpaca or prompt/completion; see core/data).")
    max_length: int = Field(512, ge=8, description="Token limit per example (prompt is cut from the left).")
    packing: bool = Field(False, description="Concatenate examples into max_length blocks (no padding).")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share held out for evaluation (at least 1).")
    limit: int | None = Field(None, ge=1, description="Use only the first N records.")
    fraction: float = Field(1.0, gt=0.0, le=1.0, description="Use this share of the training split (pilots).")


class TrainSection(_Section):
    seed: int = Field(42, description="Seed for weights init, split, data order and dropout.")
    epochs: int = Field(1, ge=1, description="Passes over the training split.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Examples per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(2e-4, gt=0.0, description="Peak learning rate (AdamW).")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field("linear")
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping threshold.")
    fgm_epsilon: float = Field(0.0, ge=0.0, description="FGM adversarial step on input embeddings; 0 disables.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps (for --resume).")
    mixed_precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32",
        description="bf16: forward and backward under torch.autocast in bfloat16, weights and optimizer state kept "
        "in float32 (1.7x faster steps on this suite's 2-core AMX CPU); fp32: float32 throughout; auto: bf16 where "
        "the device computes bfloat16 natively (CUDA with bf16, a CPU with AVX512-BF16 or AMX), else fp32.",
    )


class EvalSection(_Section):
    every_steps: int | None = Field(None, ge=1, description="Also evaluate every N steps (always at the end).")
    batch_size: int = Field(8, ge=1)


class OutputSection(_Section):
    dir: Path | None = Field(None, description="Parent folder of run folders; default FINMED_DATA_DIR/runs.")
    name: str | None = Field(None, description="Run folder name; default '<method>-<config hash>'.")
    overwrite: bool = Field(False, description="Replace an existing run folder of the same name.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "/" in value or value.startswith(".")):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return value


class Gate(_Section):
    metric: Literal["eval_loss"] = Field("eval_loss", description="Pilot metric the gate reads from eval.json.")
    max: float = Field(..., description="The full run starts only if the pilot's metric is at most this.")


class ProgressiveSection(_Section):
    pilot_fraction: float = Field(0.01, gt=0.0, lt=1.0, description="Share of the training split for the pilot.")
    gate: Gate


STRATEGIES = ("single", "ddp", "fsdp", "deepspeed", "tp", "pp")


class DeepSpeedSection(_Section):
    """The DeepSpeed ZeRO block; core/finetune/deepspeed_config.py turns it into DeepSpeed's JSON."""

    stage: Literal[2, 3] = Field(3, description="ZeRO stage: 2 shards optimizer states and gradients, 3 also weights.")
    offload_params: bool = Field(False, description="ZeRO-3 only: keep weights in CPU memory between uses.")
    offload_optimizer: bool = Field(False, description="Keep optimizer states in CPU memory (DeepSpeed's CPU Adam).")

    @model_validator(mode="after")
    def _params_need_stage_3(self) -> DeepSpeedSection:
        if self.offload_params and self.stage != 3:
            raise ValueError("offload_params needs stage 3 (ZeRO-2 does not partition the weights)")
        return self


class StrategySection(_Section):
    """How many processes train and how the model is spread over them (`finmed train --strategy ...` sets the same).

    The global batch is `train.batch_size` examples per micro-batch whatever the world size: each data-parallel rank
    takes its share of every micro-batch, so one process and N processes see the same data in the same order.
    """

    name: Literal["single", "ddp", "fsdp", "deepspeed", "tp", "pp"] = Field(
        "single", description="single process, ddp, fsdp (torch fully_shard), deepspeed (ZeRO), tp (tensor), pp."
    )
    nproc: int = Field(1, ge=1, description="Processes per node (torchrun --nproc-per-node).")
    nnodes: int = Field(1, ge=1, description="Nodes taking part (torchrun --nnodes).")
    node_rank: int = Field(0, ge=0, description="This node's index among nnodes.")
    master_addr: str | None = Field(None, description="Address of node 0 (required when nnodes > 1).")
    master_port: int = Field(29500, ge=1, le=65535, description="Rendezvous port on master_addr.")
    tp: int | None = Field(None, ge=1, description="Tensor-parallel degree (default: the whole world for name=tp).")
    pp: int | None = Field(None, ge=1, description="Pipeline stages (default: the whole world for name=pp).")
    dp: int | None = Field(None, ge=1, description="Data-parallel degree (default: world / (tp * pp)).")
    fsdp_cpu_offload: bool = Field(False, description="fsdp: keep sharded weights and optimizer states on the CPU.")
    deepspeed: DeepSpeedSection = Field(default_factory=DeepSpeedSection)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _node_rank_in_range(self) -> StrategySection:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        return self


class TrainConfig(_Section):
    """One fine-tuning run. YAML files under configs/train-*.yaml are saved values of this model."""

    model: ModelSection = Field(default_factory=ModelSection)  # type: ignore[arg-type]
    method: MethodSection = Field(default_factory=LoraMethod)  # type: ignore[arg-type]
    dataset: DatasetSection
    train: TrainSection = Field(default_factory=TrainSection)  # type: ignore[arg-type]
    eval: EvalSection = Field(default_factory=EvalSection)  # type: ignore[arg-type]
    output: OutputSection = Field(default_factory=OutputSection)  # type: ignore[arg-type]
    progressive: ProgressiveSection | None = None
    strategy: StrategySection = Field(default_factory=StrategySection)  # type: ignore[arg-type]

    @model_validator(mode="before")
    @classmethod
    def _method_defaults_to_lora(cls, data: Any) -> Any:
        method = data.get("method") if isinstance(data, dict) else None
        if isinstance(method, dict) and "name" not in method:
            data = {**data, "method": {**method, "name": "lora"}}
        return data

    @model_validator(mode="after")
    def _method_fits(self) -> TrainConfig:
        if self.dataset.packing and self.method.name in PROMPT_METHODS:
            raise ValueError("dataset.packing cannot be combined with prompt methods (virtual tokens per example)")
        return self

    def run_name(self) -> str:
        """output.name, or '<method>-<8 hex of the config without output and strategy>' so --resume finds the same
        folder (a run saved by 2 ranks resumes with 1)."""
        if self.output.name:
            return self.output.name
        body = self.model_dump(mode="json", exclude={"output", "strategy"})
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.method.name}-{digest}"

    def to_yaml(self) -> str:
        """The resolved config as YAML (what the run folder keeps as config.yaml)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def same_run_as(self, saved_yaml: str) -> bool:
        """True when `saved_yaml` (a run's config.yaml) is this config up to the launch (strategy section)."""
        saved = yaml.safe_load(saved_yaml) or {}
        saved.pop("strategy", None)
        return saved == self.model_dump(mode="json", exclude={"strategy"})


def _format(exc: PydanticValidationError, source: str) -> str:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    method = None
    if len(loc) > 1 and loc[0] == "method" and loc[1] in METHODS:  # the union's tag, e.g. method.lora.lora_r
        method = loc.pop(1)
    key = ".".join(loc) or "(top level)"
    if first["type"] == "extra_forbidden" and method is not None:
        return f"{source}: '{key}' does not apply to method.name={method}; remove it or choose a method that uses it"
    if first["type"] == "union_tag_invalid":
        return f"{source}: bad value for 'method.name' (got {first.get('input', {}).get('name')!r}): choose one of " + (
            ", ".join(METHODS)
        )
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'; see `finmed train --help` or core/finetune/config.py for valid keys"
    if first["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    value = first.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    return f"{source}: bad value for '{key}'{shown}: {first['msg'].removeprefix('Value error, ')}"


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `a.b=c` override to a raw config dict; the value is parsed as YAML ('3' -> 3, 'true' -> True).

    Raises:
        ValidationError: the override is not of the form key=value.
    """
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ValidationError(f"--set {override!r}: expected section.key=value, e.g. train.lr=1e-4")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValidationError(f"--set {override!r}: '{part}' is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value) if value.strip() else None


def config_from_dict(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a raw dict into a TrainConfig.

    Raises:
        ValidationError: one line naming `source` and the bad or unknown key.
    """
    try:
        return TrainConfig.model_validate(raw)
    except PydanticValidationError as exc:
        raise ValidationError(_format(exc, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML run config, apply `a.b=c` overrides and validate. Relative dataset paths are taken relative
    to the current folder (as typed on the command line).

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: not YAML, not a mapping, or a key is unknown or has a bad value (the key is named).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ValidationError(f"{path.name}: expected a mapping of sections (model, method, dataset, ...)")
    for override in overrides or []:
        apply_override(raw, override)
    return config_from_dict(raw, path.name)
