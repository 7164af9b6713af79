"""`finmed data filter` and `finmed data augment`: thin faces over core.data.filter and core.data.augment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from core.console import console
from core.data.checks import DataChecks
from core.data.filter import FilterOptions, FilterResult, run_filter, tokenizer_count, word_count
from core.data.records import Record
from core.data.syntax import SyntaxOptions
from core.errors import NotFoundError, ValidationError

app = typer.Typer(help="Training data: the three-tier filter and augmentation.", no_args_is_help=True)


def domain_checks(domain: str) -> DataChecks:
    """The data checks the named domain registers (core.plugins), or one clear error."""
    from core.plugins import load_plugins

    plugins = {p.name: p for p in load_plugins()}
    if domain not in plugins:
        raise ValidationError(f"--domain {domain!r} is not a registered domain; use one of {', '.join(plugins)}")
    checks = plugins[domain].data
    if checks is None:
        raise ValidationError(f"--domain {domain}: the domain registers no data checks (DomainPlugin.data)")
    return checks


def token_counter(tokenizer: str) -> Callable[[Record], int]:
    """`words`, or the tokenizer of a base model ('default', a folder, a cached hub id)."""
    if tokenizer == "words":
        return word_count
    from transformers import AutoTokenizer

    from core.models.resolve import resolve_model
    from core.settings import get_settings

    ref = resolve_model(tokenizer, get_settings().models_dir)
    return tokenizer_count(AutoTokenizer.from_pretrained(ref.source))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console
    )


def print_report(result: FilterResult) -> None:
    """The per-tier table: input, passed, dropped, flagged, top reasons."""
    table = Table("tier", "input", "passed", "dropped", "flagged", "reasons (count)")
    for tier in result.report.tiers:
        reasons = ", ".join(f"{code} {n}" for code, n in tier.reasons.most_common(4))
        flags = ", ".join(f"{code} {n}" for code, n in tier.flags.most_common(2))
        table.add_row(
            tier.name,
            str(tier.input),
            str(tier.passed),
            str(tier.dropped),
            str(tier.flagged),
            "; ".join(x for x in (reasons, f"flags: {flags}" if flags else "") if x),
        )
    console.print(table)
    for tier in result.report.tiers:
        for code, n in tier.flags.most_common():
            console.print(f"{tier.name}: {n} records kept but flagged {code}: {result.descriptions.get(code, '')}")
    console.print(f"kept -> {result.output}; rejected -> {result.rejected}; report -> {result.report_path}")


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise NotFoundError(f"--in {path}: no such file")


_LANGS = typer.Option("", "--languages", help="Expected languages, ISO 639-1, comma-separated (default: domain's).")
_TOKENIZER = typer.Option(
    "default", "--tokenizer", help="Count tokens with this base model's tokenizer ('default', a folder) or 'words'."
)


@app.command("filter")
def filter_cmd(
    input_path: Path = typer.Option(
        ..., "--in", help="Records, JSONL (messages, instruction/output or prompt/completion)."
    ),
    output: Path = typer.Option(..., "--out", help="Kept records, JSONL; rejected.jsonl is written beside it."),
    domain: str = typer.Option(..., "--domain", help="Whose tier-2 and tier-3 checks to run (finance, medical)."),
    report: Path = typer.Option(None, "--report", help="Counts per tier (default: report.json beside --out)."),
    against: Path = typer.Option(None, "--against", help="Evaluation JSONL: drop records overlapping it."),
    overlap: float = typer.Option(0.5, help="Share of a record's 8-grams in --against that drops it."),
    tokenizer: str = _TOKENIZER,
    min_tokens: int = typer.Option(2, help="Fewest tokens (prompt + answer)."),
    max_tokens: int = typer.Option(4096, help="Most tokens (rendered conversation)."),
    max_bytes: int = typer.Option(1_000_000, help="Longest line read; longer lines are rejected as too_large."),
    near_dup: float = typer.Option(0.9, help="MinHash LSH Jaccard threshold for near duplicates."),
    languages: str = _LANGS,
) -> None:
    """Run the three tiers (syntax, semantic, knowledge) and decontamination; every drop is counted and kept."""
    _check_input(input_path)
    checks = domain_checks(domain)
    if against is not None and not against.is_file():
        raise NotFoundError(f"--against {against}: no such file")
    options = FilterOptions(
        syntax=SyntaxOptions(
            max_bytes=max_bytes,
            min_tokens=min_tokens,
            max_tokens=max_tokens,
            languages=tuple(x.strip() for x in languages.split(",") if x.strip()) or checks.languages,
            near_dup=near_dup,
        ),
        against=against,
        overlap=overlap,
    )
    count = token_counter(tokenizer)
    with _progress() as progress:
        task = progress.add_task("filtering", total=input_path.stat().st_size)
        result = run_filter(
            input_path,
            output,
            report or output.with_name("report.json"),
            checks=checks,
            domain=domain,
            options=options,
            count_tokens=count,
            progress=lambda done: progress.update(task, completed=done),
        )
    print_report(result)


@app.command("augment")
def augment_cmd(
    input_path: Path = typer.Option(..., "--in", help="Filtered records, JSONL (the output of `finmed data filter`)."),
    output: Path = typer.Option(..., "--out", help="Originals plus augmented records that re-passed the filter."),
    domain: str = typer.Option(..., "--domain", help="Whose vocabulary and checks to use (finance, medical)."),
    method: str = typer.Option(..., "--method", help="backtranslate or kg-substitute."),
    translator: str = typer.Option(
        None,
        help="backtranslate (required; none ships offline): a MarianMT/NLLB folder, or a causal LM with --kind causal.",
    ),
    back_translator: str = typer.Option(
        None, help="backtranslate: the folder for pivot -> source (default: --translator, for NLLB or causal LMs)."
    ),
    kind: str = typer.Option("seq2seq", help="Translator kind: seq2seq (Marian, NLLB) or causal (prompted LM)."),
    source_lang: str = typer.Option("zh", "--source-lang", help="Language of the records (ISO 639-1)."),
    pivot_lang: str = typer.Option("en", "--pivot-lang", help="Language to translate through."),
    per_record: int = typer.Option(1, help="kg-substitute: variants per record."),
    seed: int = typer.Option(0, help="Seed of the substitution choices (same seed, same output)."),
    report: Path = typer.Option(None, "--report", help="Counts (default: augment-report.json beside --out)."),
    tokenizer: str = _TOKENIZER,
    languages: str = _LANGS,
) -> None:
    """Add back-translated or knowledge-graph-substituted variants; each carries augmented_from and the method and
    must re-pass the filter (rejections go to augment-rejected.jsonl beside --out)."""
    from core.data.augment import AugmentOptions, run_augment

    _check_input(input_path)
    checks = domain_checks(domain)
    options = AugmentOptions(
        method=method,
        translator=translator,
        back_translator=back_translator,
        kind=kind,
        source_lang=source_lang,
        pivot_lang=pivot_lang,
        per_record=per_record,
        seed=seed,
        languages=tuple(x.strip() for x in languages.split(",") if x.strip()) or checks.languages,
    )
    translate = options.translator_or_error()  # before anything is read: one clear line when it is missing
    count = token_counter(tokenizer)
    with _progress() as progress:
        task = progress.add_task(f"augmenting ({method})", total=input_path.stat().st_size)
        result = run_augment(
            input_path,
            output,
            report or output.with_name("augment-report.json"),
            checks=checks,
            domain=domain,
            options=options,
            translate=translate,
            count_tokens=count,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(
        f"{result.originals} originals, {result.generated} variants generated, {result.kept} re-passed the filter"
    )
    print_report(result.filter)
