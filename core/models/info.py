"""Describe a model folder without loading weights: architecture, parameter count, dtype, vocab, path."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.models.resolve import ModelRef


@dataclass(frozen=True)
class ModelInfo:
    """What `finmed model info` prints."""

    name: str
    architecture: str
    parameters: int
    dtype: str
    vocab_size: int
    hidden_size: int
    layers: int
    path: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I8": "int8", "U8": "uint8"}


def _count_safetensors(folder: Path) -> tuple[int, str]:
    from safetensors import safe_open

    total, dtype = 0, "unknown"
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                sl = handle.get_slice(key)
                n = 1
                for dim in sl.get_shape():
                    n *= dim
                total += n
                dtype = str(sl.get_dtype())
    return total, _DTYPES.get(dtype, dtype.lower())


def model_info(ref: ModelRef) -> ModelInfo:
    """Read config.json and the safetensors headers of a local model (hub ids are read from the cache)."""
    folder = Path(ref.source)
    if ref.kind == "hub":
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ref.source, local_files_only=True))
    config = json.loads((folder / "config.json").read_text())
    params, dtype = _count_safetensors(folder)
    return ModelInfo(
        name=ref.name,
        architecture=(config.get("architectures") or ["unknown"])[0],
        parameters=params,
        dtype=dtype if params else str(config.get("dtype") or config.get("torch_dtype") or "unknown"),
        vocab_size=int(config.get("vocab_size", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        layers=int(config.get("num_hidden_layers", 0)),
        path=str(folder.resolve()),
    )
