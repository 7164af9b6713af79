"""The export precisions finmed knows and the options that shape each one, validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import ValidationError

PRECISIONS = ("fp32", "fp16", "int8", "int4", "gptq")
EXECUTION_PROVIDERS = ("cpu", "cuda")
INT4_ALGOS = ("default", "rtn", "k_quant", "rtn_last", "k_quant_last", "k_quant_mixed")
BLOCK_SIZES = (16, 32, 64, 128, 256)
INT8_SCHEMES = ("nbits", "dynamic")

# fp16 on CPU: the model builder writes a graph, but ONNX Runtime's CPU kernels fail on its first decode step
# (a Cast buffer shape mismatch in repeat_kv), so finmed refuses it instead of writing a folder that cannot serve.
FP16_CPU_MESSAGE = (
    "precision fp16 is a CUDA precision: ONNX Runtime cannot decode the builder's fp16 graph on CPU; "
    "use --execution-provider cuda, or fp32/int8/int4 on CPU"
)


@dataclass(frozen=True)
class ExportOptions:
    """How to build one ONNX folder.

    Attributes:
        precision: one of PRECISIONS.
        execution_provider: "cpu" or "cuda".
        accuracy_level: MatMulNBits activation precision for int4/int8/gptq (1 fp32, 2 fp16, 3 bf16, 4 int8);
            None keeps the builder's default (4 on CPU).
        block_size: weights per quantization block for int4/int8/gptq.
        int4_algo: the builder's weight-only algorithm for int4 ("default" is block-wise round-to-nearest).
        int8_scheme: "nbits" (MatMulNBits 8-bit from the builder) or "dynamic" (ORT dynamic QDQ on the fp32 graph).
        is_symmetric: symmetric (int) or asymmetric (uint with zero points) block quantization.
    """

    precision: str
    execution_provider: str = "cpu"
    accuracy_level: int | None = None
    block_size: int = 32
    int4_algo: str = "default"
    int8_scheme: str = "nbits"
    is_symmetric: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValidationError(f"unknown precision '{self.precision}': choose one of {', '.join(PRECISIONS)}")
        if self.execution_provider not in EXECUTION_PROVIDERS:
            raise ValidationError(
                f"unknown execution provider {self.execution_provider!r}: "
                f"choose one of {', '.join(EXECUTION_PROVIDERS)}"
            )
        if self.precision == "fp16" and self.execution_provider == "cpu":
            raise ValidationError(FP16_CPU_MESSAGE)
        if self.accuracy_level is not None and self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ValidationError(f"accuracy_level {self.accuracy_level} is not one of 0, 1, 2, 3, 4")
        if self.block_size not in BLOCK_SIZES:
            raise ValidationError(f"block_size {self.block_size} is not one of {', '.join(map(str, BLOCK_SIZES))}")
        if self.int4_algo not in INT4_ALGOS:
            raise ValidationError(f"int4_algo '{self.int4_algo}' is not one of {', '.join(INT4_ALGOS)}")
        if self.int8_scheme not in INT8_SCHEMES:
            raise ValidationError(f"int8_scheme '{self.int8_scheme}' is not one of {', '.join(INT8_SCHEMES)}")

    @property
    def builder_precision(self) -> str:
        """The precision the model builder is asked for (gptq and dynamic int8 start from an fp32 graph)."""
        if self.precision == "gptq" or (self.precision == "int8" and self.int8_scheme == "dynamic"):
            return "fp32"
        return self.precision

    def builder_extra_options(self) -> list[str]:
        """KEY=VALUE options for onnxruntime_genai.models.builder (weight-only quantization knobs)."""
        opts: list[str] = [f"{k}={v}" for k, v in self.extra.items()]
        if self.builder_precision in ("int4", "int8"):
            opts.append(f"block_size={self.block_size}")
            opts.append(f"is_symmetric={str(self.is_symmetric).lower()}")
            if self.accuracy_level is not None:
                opts.append(f"accuracy_level={self.accuracy_level}")
            if self.builder_precision == "int4" and self.int4_algo != "default":
                opts.append(f"algo_config={self.int4_algo}")
        return opts

    def label(self) -> str:
        """Short name for tables, e.g. 'int4' or 'int4 (acc 1, block 64)'."""
        knobs = []
        if self.accuracy_level is not None:
            knobs.append(f"acc {self.accuracy_level}")
        if self.precision in ("int4", "gptq") and self.block_size != 32:
            knobs.append(f"block {self.block_size}")
        if self.precision == "int4" and self.int4_algo != "default":
            knobs.append(self.int4_algo)
        if self.precision == "int8" and self.int8_scheme != "nbits":
            knobs.append(self.int8_scheme)
        return self.precision + (f" ({', '.join(knobs)})" if knobs else "")
