"""Build an ONNX Runtime GenAI model folder with onnxruntime-genai's model builder, for tests and the benchmark.

The export issue owns `finmed export`; until it is merged, the serving tests and bench/serve.py call the model
builder directly through this one function, so switching them to `finmed export` is a one-line change.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from core.atomic import atomic_dir


def build_genai_folder(model_dir: Path, out_dir: Path, *, precision: str = "int4", provider: str = "cpu") -> Path:
    """Export a Hugging Face causal LM folder to an ONNX Runtime GenAI folder (model.onnx + genai_config.json).

    Args:
        model_dir: folder with config.json, safetensors and tokenizer files.
        out_dir: destination; written to a temporary sibling and renamed when complete.
        precision: fp32, fp16 or int4 (MatMulNBits, RTN).
        provider: execution provider the graph is built for (cpu or cuda).

    Returns:
        out_dir.
    """
    import onnxruntime  # noqa: F401  (loads libonnxruntime before onnxruntime_genai, which needs it)
    from onnxruntime_genai.models.builder import create_model, parse_extra_options

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        cache = tmp / ".cache"
        with contextlib.redirect_stdout(io.StringIO()):
            options = parse_extra_options(
                "", str(model_dir), str(tmp), precision, provider, str(cache), ["hf_token=false"]
            )
            create_model("", str(model_dir), str(tmp), precision, provider, str(cache), **options)
        shutil.rmtree(cache, ignore_errors=True)
    return out_dir
