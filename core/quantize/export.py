"""`finmed export`: merge an adapter, build an ONNX Runtime GenAI folder at one precision, publish it atomically."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import ConflictError, FinmedError, NotFoundError, ValidationError
from core.quantize.merge import MergedModel, check_run, is_finmed_run, merge_finmed_run, merge_run
from core.quantize.precisions import ExportOptions

EXPORT_META = "finmed_export.json"
MAX_CALIB_TOKENS = 256


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the folder, its precision and options, its size and where it came from."""

    path: Path
    precision: str
    label: str
    method: str
    base_model: str
    source: str
    size_mb: float
    seconds: float
    options: dict[str, Any]


def folder_size_mb(path: Path) -> float:
    """Total size of the files in `path`, in MiB."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def _check_inputs(run_dir: Path | None, model: str | None, options: ExportOptions, calib: Path | None) -> None:
    if (run_dir is None) == (model is None):
        raise ValidationError("give exactly one of --run RUN_DIR or --model MODEL")
    if run_dir is not None:
        check_run(run_dir)
    if options.precision == "gptq":
        if calib is None:
            raise ValidationError("precision gptq needs calibration data: pass --calib FILE (chat JSONL or text lines)")
        if not Path(calib).is_file():
            raise NotFoundError(f"calibration file {calib} does not exist")


def _plain_model(model: str, out_dir: Path) -> MergedModel:
    """A base model by name: folders are used in place, hub ids are loaded from the local cache and saved."""
    from core.models.resolve import load_causal_lm, resolve_model
    from core.settings import get_settings

    ref = resolve_model(model, get_settings().models_dir)
    if ref.kind != "hub":
        return MergedModel(Path(ref.source), ref.name, "base")
    hf_model, tokenizer = load_causal_lm(ref)
    hf_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return MergedModel(out_dir, ref.name, "base")


def run_builder(src: Path, out_dir: Path, cache_dir: Path, options: ExportOptions) -> None:
    """onnxruntime-genai's model builder, its chatter captured (shown only when it fails)."""
    from onnxruntime_genai.models.builder import create_model, parse_extra_options

    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            extra = parse_extra_options(
                "",
                str(src),
                str(out_dir),
                options.builder_precision,
                options.execution_provider,
                str(cache_dir),
                options.builder_extra_options(),
            )
            create_model(
                "",
                str(src),
                str(out_dir),
                options.builder_precision,
                options.execution_provider,
                str(cache_dir),
                **extra,
            )
    except Exception as exc:  # noqa: BLE001  (the builder raises bare Exceptions; name the model and the cause)
        raise FinmedError(f"ONNX model builder failed for {src} at {options.precision}: {exc}") from exc


def _calibration_samples(calib: Path, tokenizer_dir: Path) -> list[Any]:
    import numpy as np
    from transformers import AutoTokenizer

    from core.quantize.calib import read_texts

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    texts = read_texts(calib, tokenizer)
    return [np.asarray(tokenizer(t)["input_ids"][:MAX_CALIB_TOKENS], dtype=np.int64) for t in texts]


def _dynamic_int8(model_dir: Path) -> None:
    """Dynamic QDQ int8 (ORT quantize_dynamic) of the builder's fp32 MatMuls, in place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    side = model_dir / ".int8"
    side.mkdir()
    quantize_dynamic(
        str(model_dir / "model.onnx"),
        str(side / "model.onnx"),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        use_external_data_format=True,
        extra_options={"MatMulConstBOnly": True},
    )
    for f in model_dir.glob("model.onnx*"):
        f.unlink()
    for f in side.iterdir():
        f.replace(model_dir / f.name)
    side.rmdir()


def export_model(
    *,
    options: ExportOptions,
    out_dir: Path,
    run_dir: Path | None = None,
    model: str | None = None,
    base: str | None = None,
    calib: Path | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    post_build: Callable[[Path], dict[str, Any]] | None = None,
) -> ExportResult:
    """Export a run (adapter merged into its base) or a plain model to a GenAI folder at `options.precision`.

    Everything is built in a hidden temporary folder next to `out_dir` and renamed at the end, so a failure or an
    interrupt never leaves a half-written `out_dir`.

    Args:
        post_build: a last step on the built folder before it is published (core.quantize.lora_slots turns the
            LoRA weights of a template adapter into adapter slots there); what it returns joins finmed_export.json.

    Raises:
        ValidationError: both or neither of run_dir/model, gptq without calib, fp16 on CPU, bad options.
        NotFoundError: a run folder without an adapter, a missing calibration file or base model.
        ConflictError: out_dir exists and overwrite is False.
    """
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    _check_inputs(run_dir, model, options, calib)
    if out_dir.exists() and not overwrite:
        raise ConflictError(f"output folder {out_dir} already exists: choose another --out or pass --overwrite")
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        if run_dir is not None:
            say(f"merging adapter from {run_dir}")
            if is_finmed_run(Path(run_dir)):
                merged = merge_finmed_run(Path(run_dir), work / "hf")
            else:
                merged = merge_run(Path(run_dir), work / "hf", base=base)
        else:
            merged = _plain_model(str(model), work / "hf")
        onnx_dir = work / "onnx"
        say(f"building ONNX ({options.builder_precision}, {options.execution_provider})")
        run_builder(merged.path, onnx_dir, work / "cache", options)
        if options.precision == "gptq":
            say(f"GPTQ calibration on {calib}")
            from core.quantize.gptq import gptq_quantize_folder

            genai_config = json.loads((onnx_dir / "genai_config.json").read_text())
            gptq_quantize_folder(
                onnx_dir,
                _calibration_samples(Path(str(calib)), merged.path),
                genai_config=genai_config,
                block_size=options.block_size,
                accuracy_level=4 if options.accuracy_level is None else options.accuracy_level,
            )
        if options.precision == "int8" and options.int8_scheme == "dynamic":
            say("dynamic int8 quantization")
            _dynamic_int8(onnx_dir)
        if merged.prompt_prefix is not None:
            from core.quantize.prefix import write_prompt_prefix

            say("appending the soft prompt to the embedding table")
            write_prompt_prefix(onnx_dir, merged.prompt_prefix)
        extra_meta = post_build(onnx_dir) if post_build is not None else {}
        result = ExportResult(
            path=out_dir,
            precision=options.precision,
            label=options.label(),
            method=merged.method,
            base_model=merged.base_model,
            source=str(run_dir if run_dir is not None else model),
            size_mb=round(folder_size_mb(onnx_dir), 3),
            seconds=round(time.perf_counter() - started, 2),
            options={k: v for k, v in asdict(options).items() if k != "extra"},
        )
        meta = {**asdict(result), "path": str(out_dir), **extra_meta}
        (onnx_dir / EXPORT_META).write_text(json.dumps(meta, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        onnx_dir.rename(out_dir)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
