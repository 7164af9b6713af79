"""`finmed export` and `finmed quant-report`: thin faces over core.quantize.export and core.quantize.report."""

from __future__ import annotations

from pathlib import Path

import typer

from core.console import console
from core.quantize.precisions import PRECISIONS, ExportOptions

app = typer.Typer(help="Export and quantization.", no_args_is_help=True)


def _status(message: str) -> None:
    console.log(message)


@app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="GenAI folder to write (built under a temporary name, then renamed)."),
    precision: str = typer.Option("int4", "--precision", help=f"One of {', '.join(PRECISIONS)}."),
    run: Path = typer.Option(None, "--run", help="Fine-tuning run folder holding a peft adapter."),
    model: str = typer.Option(None, "--model", help="A plain model instead of a run: 'default', a folder, a hub id."),
    base: str = typer.Option(
        None,
        "--base",
        help="With --as-adapter: the exported base (with adapter slots) the adapter is for. Otherwise: the base model "
        "of a bare peft run (default: its base_model_name_or_path).",
    ),
    as_adapter: bool = typer.Option(
        False,
        "--as-adapter",
        help="Write the run's LoRA (with the runs its base was merged from) as an adapter file for --base, served "
        "beside other adapters on one base (`finmed serve` config: models[].adapters).",
    ),
    adapter_slots: list[Path] = typer.Option(
        None,
        "--adapter-slots",
        help="With --model: export the base with LoRA slots for this run or training YAML (repeatable; the union of "
        "their layers and projections), so adapters can be served on it. Precisions fp32, int8, int4.",
    ),
    calib: Path = typer.Option(None, "--calib", help="Calibration samples for gptq: chat JSONL or text lines."),
    execution_provider: str = typer.Option("cpu", "--execution-provider", help="cpu or cuda."),
    accuracy_level: int = typer.Option(
        None,
        "--accuracy-level",
        help="int4/int8/gptq activation precision: 1 fp32, 2 fp16, 3 bf16, 4 int8 (CPU default 4).",
    ),
    block_size: int = typer.Option(32, "--block-size", help="Weights per quantization block (16-256)."),
    int4_algo: str = typer.Option(
        "default", "--int4-algo", help="Builder algorithm for int4: default (RTN), rtn, k_quant, rtn_last, ..."
    ),
    int8_scheme: str = typer.Option(
        "nbits", "--int8-scheme", help="int8 as MatMulNBits 8-bit (nbits) or dynamic QDQ (dynamic)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
) -> None:
    """Merge an adapter into its base and build an ONNX Runtime GenAI model folder at one precision; or export a base
    with adapter slots (--adapter-slots), or a run as an adapter for such a base (--as-adapter)."""
    from core.errors import ValidationError
    from core.quantize.export import export_model

    if as_adapter:
        if run is None or not base:
            raise ValidationError("--as-adapter needs --run RUN and --base EXPORT (exported with --adapter-slots)")
        from core.quantize.lora_slots import export_adapter

        with console.status("exporting adapter") as status:
            written = export_adapter(
                run_dir=run, base_export=Path(base), out_dir=out, overwrite=overwrite, progress=status.update
            )
        console.print(
            f"adapter (rank {written.rank}, {written.tensors} tensors, {len(written.chain)} run(s)) written to "
            f"{written.path}: {written.size_mb:.2f} MB in {written.seconds:.0f} s"
        )
        return
    options = ExportOptions(
        precision,
        execution_provider=execution_provider,
        accuracy_level=accuracy_level,
        block_size=block_size,
        int4_algo=int4_algo,
        int8_scheme=int8_scheme,
    )
    if adapter_slots:
        if model is None or run is not None:
            raise ValidationError("--adapter-slots exports a plain base: give --model M, not --run")
        from core.quantize.lora_slots import export_base_with_slots

        with console.status(f"exporting {options.label()} with adapter slots") as status:
            result = export_base_with_slots(
                model=model,
                sources=list(adapter_slots),
                options=options,
                out_dir=out,
                overwrite=overwrite,
                progress=status.update,
            )
        console.print(f"{result.label} base with adapter slots written to {result.path}: {result.size_mb:.1f} MB")
        return
    with console.status(f"exporting {options.label()}") as status:
        result = export_model(
            options=options,
            out_dir=out,
            run_dir=run,
            model=model,
            base=base,
            calib=calib,
            overwrite=overwrite,
            progress=lambda msg: status.update(msg),
        )
    console.print(
        f"{result.label} ({result.method}) written to {result.path}: {result.size_mb:.1f} MB in {result.seconds:.0f} s"
    )


@app.command("quant-report")
def quant_report_cmd(
    eval_path: Path = typer.Option(
        ..., "--eval", help="Eval chat JSONL; each record's last assistant message is the answer."
    ),
    out: Path = typer.Option(..., "--out", help="Report folder (report.md, report.json, report.png, models/)."),
    run: Path = typer.Option(None, "--run", help="Fine-tuning run folder holding a peft adapter."),
    model: str = typer.Option(None, "--model", help="A plain model instead of a run."),
    base: str = typer.Option(None, "--base", help="Base model of the run."),
    precisions: str = typer.Option(
        ",".join(PRECISIONS), "--precisions", help="Comma-separated precisions (fp32 required)."
    ),
    calib: Path = typer.Option(None, "--calib", help="Calibration samples for gptq (not the eval set)."),
    ppl_text: Path = typer.Option(
        None, "--ppl-text", help="Held-out text for perplexity (default: the eval conversations)."
    ),
    metric: str = typer.Option("auto", "--metric", help="auto, exact_match or rouge_l."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Answer budget (default: longest answer + 4)."),
    execution_provider: str = typer.Option("cpu", "--execution-provider", help="cpu or cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
) -> None:
    """Export every precision and measure accuracy, perplexity, size, memory, latency and speed in one run."""
    from core.quantize.report import quant_report
    from core.quantize.report_render import markdown_table

    requested: list[str | ExportOptions] = [p.strip() for p in precisions.split(",") if p.strip()]
    with console.status("quantization report") as status:
        report = quant_report(
            eval_path=eval_path,
            out_dir=out,
            run_dir=run,
            model=model,
            base=base,
            precisions=requested,
            calib=calib,
            ppl_path=ppl_text,
            metric=metric,
            max_new_tokens=max_new_tokens,
            execution_provider=execution_provider,
            overwrite=overwrite,
            progress=lambda msg: status.update(msg),
        )
    console.print(markdown_table(report), highlight=False)
    console.print(f"report written to {out}")
