"""`finmed quant-report`: export every requested precision of one model and measure them side by side in one run."""

from __future__ import annotations

import json
import platform
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import ConflictError, ValidationError
from core.quantize.calib import read_chat_records
from core.quantize.export import export_model
from core.quantize.measure import Workload, measure_in_child
from core.quantize.merge import (
    PROMPT_METHODS,
    MergedModel,
    is_finmed_run,
    merge_finmed_run,
    merge_run,
    read_adapter_config,
)
from core.quantize.precisions import FP16_CPU_MESSAGE, PRECISIONS, ExportOptions
from core.quantize.report_render import write_chart, write_markdown
from core.quantize.task_metrics import choose_metric, score

FIGURES = (
    "size_mb",
    "task_metric",
    "task_drop_pts",
    "perplexity",
    "peak_mem_mb",
    "ttft_ms",
    "decode_tps_b1",
    "decode_tps_b8",
)
MAX_PPL_TOKENS = 512


def slug(label: str) -> str:
    """A folder name for a precision label: 'int4 (acc 1, block 64)' -> 'int4-acc-1-block-64'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _prepare_workload(
    model_dir: Path,
    eval_path: Path,
    ppl_path: Path | None,
    max_new_tokens: int | None,
) -> tuple[Workload, list[str]]:
    """Token ids for the serving processes and the reference answers, with the export's own tokenizer."""
    from transformers import AutoTokenizer

    from core.quantize.calib import read_texts

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    records = read_chat_records(eval_path)
    prompts, references = [], []
    for number, messages in enumerate(records, start=1):
        if messages[-1].get("role") != "assistant" or len(messages) < 2:
            raise ValidationError(
                f"{eval_path} record {number}: the last message must be the expected assistant answer"
            )
        text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        references.append(messages[-1]["content"])
    if ppl_path is not None:
        ppl_texts = read_texts(ppl_path, tokenizer)
    else:  # held-out conversations: the eval records themselves, answers included
        ppl_texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in records]
    ppl_ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:MAX_PPL_TOKENS] for t in ppl_texts]
    budget = max_new_tokens or max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references) + 4
    eos = {tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))}
    eos.discard(None)
    eos.discard(tokenizer.unk_token_id)
    work = Workload(
        prompts=prompts,
        ppl_texts=ppl_ids,
        speed_prompt=prompts[0],
        max_new_tokens=budget,
        eos_ids=sorted(int(e) for e in eos),
    )
    return work, references


def _variants(precisions: list[str | ExportOptions], execution_provider: str) -> list[ExportOptions | str]:
    """ExportOptions per requested precision; fp16 on CPU stays a string (it is reported as skipped)."""
    out: list[ExportOptions | str] = []
    for p in precisions:
        if isinstance(p, ExportOptions):
            out.append(p)
        elif p not in PRECISIONS:
            raise ValidationError(f"unknown precision '{p}': choose from {', '.join(PRECISIONS)}")
        elif p == "fp16" and execution_provider == "cpu":
            out.append(p)
        else:
            out.append(ExportOptions(p, execution_provider=execution_provider))
    labels = [v if isinstance(v, str) else v.label() for v in out]
    if "fp32" not in labels:
        raise ValidationError("--precisions must include fp32: drops are measured against it")
    if len(set(labels)) != len(labels):
        raise ValidationError(f"--precisions lists a precision twice: {', '.join(labels)}")
    return out


def quant_report(
    *,
    eval_path: Path,
    out_dir: Path,
    run_dir: Path | None = None,
    model: str | None = None,
    base: str | None = None,
    precisions: list[str | ExportOptions] | None = None,
    calib: Path | None = None,
    ppl_path: Path | None = None,
    metric: str = "auto",
    max_new_tokens: int | None = None,
    execution_provider: str = "cpu",
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Export each precision, serve each in its own process, and write report.md, report.json and report.png.

    The fp32 export is the reference for every drop. Built in a temporary folder next to `out_dir`, renamed at the
    end; exports stay under out_dir/models/<precision>/.

    Raises:
        ValidationError: unknown precision or metric, no fp32, gptq without calib, a malformed eval record.
        NotFoundError: missing eval, calib or run adapter.
        ConflictError: out_dir exists and overwrite is False.
    """
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    variants = _variants(list(precisions or ["fp32", "fp16", "int8", "int4", "gptq"]), execution_provider)
    if any(isinstance(v, ExportOptions) and v.precision == "gptq" for v in variants) and calib is None:
        raise ValidationError("precision gptq needs calibration data: pass --calib FILE (not the eval set)")
    references_check = read_chat_records(eval_path)  # fail on a bad eval file before any export
    if out_dir.exists() and not overwrite:
        raise ConflictError(f"report folder {out_dir} already exists: choose another --out or pass --overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        rows: dict[str, dict[str, Any]] = {}
        exports: dict[str, Any] = {}
        source = _merge_once(work_dir, run_dir, base, say)
        for variant in variants:
            if isinstance(variant, str):
                rows[variant] = {"skipped": FP16_CPU_MESSAGE}
                continue
            label = variant.label()
            say(f"exporting {label}")
            result = export_model(
                options=variant,
                out_dir=work_dir / "models" / slug(label),
                run_dir=None if source else run_dir,
                model=str(source.path) if source else model,
                base=base,
                calib=calib,
            )
            if source:  # exported from the merged folder: record the run as the source
                result = replace(result, method=source.method, base_model=source.base_model, source=str(run_dir))
            exports[label] = result
        first = next(iter(exports.values()))
        work, references = _prepare_workload(
            work_dir / "models" / slug(first.label), eval_path, ppl_path, max_new_tokens
        )
        chosen = choose_metric(metric, references)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(work_dir / "models" / slug(first.label)))
        predictions: dict[str, list[str]] = {}
        for label, result in exports.items():
            say(f"serving and measuring {label}")
            measured = measure_in_child(work_dir / "models" / slug(label), work)
            predictions[label] = [tokenizer.decode(a, skip_special_tokens=True) for a in measured.pop("answers")]
            rows[label] = {
                "size_mb": result.size_mb,
                "task_metric": score(chosen, predictions[label], references),
                **measured,
                "export_seconds": result.seconds,
                "options": result.options,
                "path": str(out_dir / "models" / slug(label)),
            }
        rows = {
            (v if isinstance(v, str) else v.label()): rows[v if isinstance(v, str) else v.label()] for v in variants
        }
        _add_relative_figures(rows)
        report = {
            "model": first.base_model,
            "source": first.source,
            "method": first.method,
            "eval": str(eval_path),
            "n_eval": len(references_check),
            "metric": chosen,
            "execution_provider": execution_provider,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
            "precisions": rows,
        }
        (work_dir / "report.json").write_text(json.dumps(report, indent=2, default=float))
        (work_dir / "predictions.json").write_text(
            json.dumps({"references": references, "predictions": predictions}, indent=2, ensure_ascii=False)
        )
        write_markdown(report, work_dir / "report.md")
        write_chart(report, work_dir / "report.png")
        shutil.rmtree(work_dir / "merged", ignore_errors=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work_dir.rename(out_dir)
        return report
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _merge_once(
    work_dir: Path, run_dir: Path | None, base: str | None, say: Callable[[str], None]
) -> MergedModel | None:
    """Merge a LoRA-style run once for all precisions (None: a plain model, or prompt tuning, merged per export)."""
    if run_dir is None:
        return None
    if is_finmed_run(run_dir):
        from core.finetune.load import SOFT_PROMPT, read_run_config

        if read_run_config(run_dir).method.name in SOFT_PROMPT:
            return None
        say(f"merging run {run_dir}")
        return merge_finmed_run(run_dir, work_dir / "merged")
    if str(read_adapter_config(run_dir).get("peft_type", "LORA")).upper() in PROMPT_METHODS:
        return None
    say(f"merging adapter from {run_dir}")
    return merge_run(run_dir, work_dir / "merged", base=base)


def _add_relative_figures(rows: dict[str, dict[str, Any]]) -> None:
    """Drop in points, size share and speed-up, all against the fp32 row of the same run."""
    ref = rows["fp32"]
    for row in rows.values():
        if "skipped" in row:
            continue
        row["task_drop_pts"] = round(100 * (ref["task_metric"] - row["task_metric"]), 2)
        row["size_pct_of_fp32"] = round(100 * row["size_mb"] / ref["size_mb"], 1)
        row["speedup_b1"] = round(row["decode_tps_b1"] / ref["decode_tps_b1"], 2)
        row["speedup_b8"] = round(row["decode_tps_b8"] / ref["decode_tps_b8"], 2)
