"""`finmed finance ...`: synthetic data, numeric model fitting, cascade scoring, backtests and training records.

A thin face: scoring goes through domains/finance/service.py (the same service as the API and the page), fitting
through screen.py; this file parses options, draws progress and prints one line per fact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from core.console import console, err_console
from core.errors import ValidationError
from core.settings import get_settings

app = typer.Typer(
    help="Finance fraud-risk scoring: synth, fit, score, backtest, make-training, adapt, index-cases.",
    no_args_is_help=True,
)

MAP_HELP = "Column mapping field=column (repeatable), e.g. --map amount=amt --map timestamp=time."
ADAPTER_HELP = "A `finmed train` run folder (finance adapter, or an adapt run stacked on it) or a PEFT adapter folder."


LLM_MODEL_HELP = "LLM: a model folder, an exported ONNX folder, or 'default' (FINMED_BASE_MODEL)."


@contextmanager
def llm_progress(description: str = "LLM adjudication") -> Iterator:  # noqa: ANN201  (pipeline.Progress)
    """A rich progress bar with rows/s and time left, as a (done, total) callback for the LLM stage."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class RowsPerSecond(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} rows/s" if speed else "- rows/s")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task(description, total=total)
            bar.update(task, completed=done, total=total)

        yield update


def _report_rows(bad: list, odd: list) -> None:  # noqa: ANN001  (ingest.BadRow, ingest.OddField)
    for row in bad[:20]:
        err_console.print(f"row {row.row}: {row.reason}", highlight=False)
    if len(bad) > 20:
        err_console.print(f"... and {len(bad) - 20} more rejected row(s)", highlight=False)
    for entry in odd:
        err_console.print(entry.message(), highlight=False)


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet (by suffix) atomically."""
    from core.atomic import atomic_file

    with atomic_file(path) as tmp:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def _labels(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        raise ValidationError(f"label column {column!r} not in the input; columns are: {', '.join(frame.columns)}")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = np.flatnonzero(~values.isin([0, 1]).to_numpy())
    if len(bad):
        row = int(frame["source_row"].iloc[bad[0]])
        raise ValidationError(f"label column {column!r}: row {row} is {frame[column].iloc[bad[0]]!r}, expected 0 or 1")
    return values.to_numpy(dtype=int)


def _ingest(path: Path, mapping: list[str] | None, exclude: tuple[str, ...] = ()):  # noqa: ANN202
    from domains.finance.ingest import ingest, parse_mapping

    result = ingest(path, parse_mapping(mapping), exclude=exclude)
    _report_rows(result.bad, result.odd)
    if result.bad:
        err_console.print(
            f"{len(result.bad)} unscorable row(s) rejected; {len(result.frame)} row(s) kept", highlight=False
        )
    if result.frame.empty:
        raise ValidationError(f"{path}: no valid rows to process")
    return result


def _llm(model: str | None, adapter: Path | None):  # noqa: ANN202  (llm.RiskLLM)
    """The adjudicating LLM: an exported ONNX folder (genai_config.json inside) or an in-process model."""
    if model and (Path(model) / "genai_config.json").is_file():
        from domains.finance.llm import OnnxLLM

        if adapter is not None:
            raise ValidationError("--adapter applies to in-process models; an exported ONNX folder has it merged")
        return OnnxLLM(Path(model))
    from domains.finance.llm import LocalLLM

    return LocalLLM(model, adapter=adapter)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Output file (.csv or .parquet)."),
    accounts: int = typer.Option(1000, help="Number of accounts."),
    seed: int = typer.Option(0, help="Random seed."),
    days: int = typer.Option(60, help="Days of history."),
    fraud_rate: float = typer.Option(0.04, help="Share of accounts hit by a fraud scheme."),
    new_scheme: bool = typer.Option(False, "--new-scheme", help="Generate only the new scheme (for adaptation)."),
) -> None:
    """Write synthetic labelled transactions (columns is_fraud and scheme)."""
    from domains.finance.synthetic import generate, generate_new_scheme

    if accounts < 1:
        raise ValidationError("--accounts must be at least 1")
    frame = (
        generate_new_scheme(accounts, seed=seed, days=days)
        if new_scheme
        else generate(accounts, seed=seed, days=days, fraud_rate=fraud_rate)
    )
    _write_table(frame, out)
    console.print(f"wrote {len(frame)} transactions ({int(frame['is_fraud'].sum())} fraud) to {out}")


@app.command()
def fit(
    input_path: Path = typer.Option(..., "--in", help="Labelled transactions (.csv or .parquet)."),
    label_column: str = typer.Option("is_fraud", help="Column with 0/1 fraud labels."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    out: Path = typer.Option(None, "--out", help="Model file (default DATA_DIR/finance/numeric.joblib)."),
    llm_budget: int = typer.Option(
        0, "--llm-budget", help="LLM calls on the validation slice to learn the fusion (0: numeric screen alone)."
    ),
    model: str = typer.Option(None, "--model", help=LLM_MODEL_HELP),
    adapter: Path = typer.Option(None, "--adapter", help=ADAPTER_HELP),
    k_examples: int = typer.Option(0, help="Similar labelled cases per prompt on the validation slice."),
) -> None:
    """Fit the screen: numeric model on the early rows, then fusion weight and risk levels on the latest quarter
    (a time-ordered validation slice), all saved in one model file."""
    from domains.finance.features import compute_features
    from domains.finance.pipeline import CascadePolicy
    from domains.finance.screen import fit_screen
    from domains.finance.service import default_numeric_path

    data = _ingest(input_path, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    llm = _llm(model, adapter) if llm_budget > 0 else None
    with llm_progress("LLM on the validation slice") as progress:
        numeric = fit_screen(
            data.frame,
            y,
            compute_features(data.frame, data.extra_features),
            llm=llm,
            policy=CascadePolicy(budget=llm_budget, k_examples=k_examples),
            progress=progress,
        )
    path = numeric.save(out or default_numeric_path())
    console.print(f"numeric model saved to {path} (threshold {numeric.threshold:.4f}, {numeric.version})")
    console.print(numeric.fusion.reason if numeric.fusion is not None else "no fusion fit")  # type: ignore[attr-defined]
    calibration = numeric.calibration
    if calibration is None:
        console.print(str(numeric.meta.get("calibration_note")))
    else:
        console.print(f"risk levels {calibration.version} on the {calibration.source}:")  # type: ignore[attr-defined]
        for band in calibration.bands:  # type: ignore[attr-defined]
            rate = "n/a" if band.fraud_rate is None else f"{100 * band.fraud_rate:.2f}%"
            console.print(f"  level {band.level}: {band.n} rows, fraud rate {rate}, band {band.band_text()}")


@app.command()
def score(
    input_path: Path = typer.Option(..., "--in", help="Transactions to score (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Scored output (.csv or .parquet)."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    numeric_model: Path = typer.Option(None, "--numeric-model", help="Numeric model file (default from `fit`)."),
    llm_budget: int = typer.Option(
        None,
        "--llm-budget",
        help="Most transactions the LLM adjudicates. Default: what the fusion learned at `fit` decides (no LLM "
        "calls when it showed no gain); a number given here runs anyway, reported as forced.",
    ),
    model: str = typer.Option(None, "--model", help=LLM_MODEL_HELP),
    adapter: Path = typer.Option(None, "--adapter", help=ADAPTER_HELP),
    language: str = typer.Option("en", help="Prompt language: en or zh."),
    cases: str = typer.Option(
        None, "--cases", help="Vector-store collection of labelled cases (`index-cases`) for few-shot examples."
    ),
    tenant: str = typer.Option("default", help="Tenant of the cases collection."),
    k_examples: int = typer.Option(2, help="Similar labelled cases per prompt when --cases is given."),
    store: bool = typer.Option(
        False, "--store", help="Store assessments in the database and route those needing a person to review."
    ),
    as_user: str = typer.Option(
        None, "--as", envvar="FINMED_USER", help="With --store: the analyst or engineer the outputs are recorded as."
    ),
) -> None:
    """Score transactions: numeric screen on all, LLM on a selection when the learned fusion (or --llm-budget) says
    so, calibrated level 0-5 with reasons per row."""
    from domains.finance.ingest import parse_mapping, read_table
    from domains.finance.service import score_batch, store_and_route

    if store and not as_user:
        raise ValidationError("--store records outputs for a person: give --as USER (or FINMED_USER)")
    raw = read_table(input_path)
    similar = None
    if cases:
        from core.retrieval.store import open_store
        from domains.finance.similar import StoreSimilarCases

        similar = StoreSimilarCases(open_store(get_settings()), cases, tenant=tenant)
    args = {
        "frame": raw,
        "mapping": parse_mapping(mapping),
        "numeric": numeric_model,
        "llm": lambda: _llm(model, adapter),
        "llm_budget": llm_budget,
        "similar": similar,
        "language": language,
        "k_examples": k_examples if cases else 0,
        "source": str(input_path),
    }
    routed = None
    with llm_progress() as progress:
        if store:
            from core.auth.users import get_user
            from core.db.engine import get_engine, session_scope
            from core.db.migrate import require_current

            engine = get_engine()
            require_current(engine)
            with session_scope(engine) as session:
                user = get_user(session, as_user)
                result = score_batch(session, user=user, progress=progress, **args)
                routed = store_and_route(session, user=user, result=result)
        else:
            result = score_batch(None, user=None, progress=progress, **args)
    _report_rows(result.rejected, [])
    if result.assessments.empty:
        raise ValidationError(f"{input_path}: no scorable rows ({len(result.rejected)} rejected)")
    _write_table(result.assessments, out)
    for line in result.summary_lines():
        console.print(line, highlight=False)
    if routed is not None:
        console.print(f"stored; {routed['recorded']} outputs recorded, {routed['queued']} queued for review")
    scored = result.assessments
    console.print(
        f"scored {len(scored)} transactions ({int(scored['adjudicated'].sum())} by the LLM, "
        f"{int((scored['risk_level'] >= 4).sum())} at level 4-5) -> {out}"
    )


@app.command()
def backtest(
    input_path: Path = typer.Option(..., "--in", help="Labelled history (.csv or .parquet)."),
    label_column: str = typer.Option(..., "--label-column", help="Column with 0/1 fraud labels."),
    out: Path = typer.Option(..., "--out", help="Output folder for metrics.json, report.md and charts."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    llm_budget: int = typer.Option(
        0,
        "--llm-budget",
        help="LLM calls on the training period's validation slice to learn the fusion; the test part gets as many "
        "only when the LLM gained there.",
    ),
    test_llm_budget: int = typer.Option(
        None, "--test-llm-budget", help="LLM calls on the test part whatever the fusion learned (reported as forced)."
    ),
    model: str = typer.Option(None, "--model", help=LLM_MODEL_HELP),
    adapter: Path = typer.Option(None, "--adapter", help=ADAPTER_HELP),
    finetune: bool = typer.Option(
        False, "--finetune", help="Train the finance adapter on the early part first (into OUT/adapter) and use it."
    ),
    max_records: int = typer.Option(384, help="With --finetune: most training records."),
    k_examples: int = typer.Option(
        None, help="Similar labelled cases per prompt (default 2 for a base model, 0 with an adapter)."
    ),
) -> None:
    """Time-split backtest (earliest 70% fit, latest 30% test) of numeric, LLM and fused variants, with the fusion
    and risk levels learned on the training part's latest quarter."""
    from domains.finance.backtest import run_backtest, write_report
    from domains.finance.pipeline import CascadePolicy

    if finetune and adapter is not None:
        raise ValidationError("--finetune trains its own adapter: leave out --adapter")
    wants_llm = llm_budget > 0 or (test_llm_budget or 0) > 0
    if finetune and not wants_llm:
        raise ValidationError("--finetune needs --llm-budget > 0 (the adapter is only used by LLM adjudication)")
    data = _ingest(input_path, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    llm = None if finetune or not wants_llm else _llm(model, adapter)
    tuned = finetune or adapter is not None
    policy = CascadePolicy(budget=llm_budget, k_examples=k_examples if k_examples is not None else (0 if tuned else 2))
    with llm_progress() as progress:
        result = run_backtest(
            data.frame,
            y,
            extra=data.extra_features,
            llm=llm,
            policy=policy,
            finetune_dir=out / "adapter" if finetune else None,
            finetune_records=max_records,
            test_budget=test_llm_budget,
            rejected=len(data.bad),
            progress=progress,
        )
    write_report(result, out)
    m = result.metrics
    for note in result.notes:
        console.print(note, highlight=False)
    console.print(
        f"AP numeric {m['numeric']['average_precision']} | llm {m['llm']['average_precision']} | "  # type: ignore[index]
        f"fused {m['fused']['average_precision']} -> {out / 'metrics.json'}"  # type: ignore[index]
    )


@app.command("make-training")
def make_training(
    input_path: Path = typer.Option(..., "--in", help="Labelled transactions (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Output JSONL of chat records."),
    label_column: str = typer.Option("is_fraud", help="Column with 0/1 fraud labels."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    language: str = typer.Option("en", help="Prompt language: en or zh."),
    max_records: int = typer.Option(
        512, help="Most records: fraud rows (at most half), hard and random legitimate rows; 0 keeps every row."
    ),
) -> None:
    """Build instruction records (risk prompt -> 'Risk level: X; Basis: ...') for fine-tuning."""
    from domains.finance.features import compute_features, reasons_for
    from domains.finance.training import select_rows, training_records, write_jsonl

    if language not in ("en", "zh"):
        raise ValidationError(f"--language must be en or zh, not {language!r}")
    data = _ingest(input_path, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    feats = compute_features(data.frame, data.extra_features)
    rows = select_rows(y, reasons_for(feats), max_records)
    records = training_records(data.frame, y, language=language, rows=rows, features=feats)
    write_jsonl(records, out)
    console.print(f"wrote {len(records)} training records to {out}")


@app.command("index-cases")
def index_cases_cmd(
    input_path: Path = typer.Option(..., "--in", help="Labelled transactions (.csv or .parquet)."),
    collection: str = typer.Option("finance_cases", help="Vector-store collection to write."),
    tenant: str = typer.Option("default", help="Tenant (business unit) the cases belong to."),
    label_column: str = typer.Option("is_fraud", help="Column with 0/1 fraud labels."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    max_cases: int = typer.Option(5000, help="Most cases: every fraud row (at most half), then legitimate rows."),
) -> None:
    """Index labelled cases in the vector store (LanceDB, or Weaviate) for few-shot examples in `score --cases`."""
    from core.retrieval.store import open_store
    from domains.finance.features import compute_features, reasons_for, with_features
    from domains.finance.similar import index_cases
    from domains.finance.training import select_rows

    data = _ingest(input_path, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    feats = compute_features(data.frame, data.extra_features)
    rows = select_rows(y, reasons_for(feats), max_cases)
    n = index_cases(
        open_store(get_settings()),
        with_features(data.frame, feats, rows),
        y[rows],
        collection=collection,
        tenant=tenant,
    )
    console.print(f"indexed {n} labelled cases ({int(y[rows].sum())} fraud) into {collection} (tenant {tenant})")


@app.command()
def adapt(
    examples: Path = typer.Option(..., "--examples", help="Labelled history containing the new scheme."),
    adapter: Path = typer.Option(..., "--adapter", help="The finance adapter run folder to stack the soft prompt on."),
    out: Path = typer.Option(..., "--out", help="Output folder (run folder finance-adapt, adaptation.json)."),
    label_column: str = typer.Option("is_fraud", help="Column with 0/1 fraud labels."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    old: Path = typer.Option(None, "--old", help="The old labelled set, to check the false-positive rate."),
    n_examples: int = typer.Option(64, help="Training examples, 16-64 (half new-scheme fraud where available)."),
    replay: int = typer.Option(32, help="With --old: old-set rows mixed into training against forgetting; 0: none."),
    eval_legit: int = typer.Option(
        200, help="Legitimate rows sampled for each false-positive rate and for calibration."
    ),
) -> None:
    """Learn a soft prompt for a new fraud scheme from a few labelled examples, on top of the finance adapter.

    Its decision point is then calibrated so that it flags no more old legitimate rows than the adapter did."""
    from domains.finance.adaptation import adapt as run_adapt
    from domains.finance.llm import LLM_THRESHOLD

    data = _ingest(examples, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    old_frame = old_y = None
    if old is not None:
        old_data = _ingest(old, mapping, exclude=(label_column,))
        old_frame, old_y = old_data.frame, _labels(old_data.frame, label_column)
    out.mkdir(parents=True, exist_ok=True)
    result = run_adapt(
        data.frame,
        y,
        adapter,
        out,
        old=old_frame,
        old_labels=old_y,
        n_examples=n_examples,
        n_replay=replay,
        n_eval_legit=eval_legit,
    )
    from rich.table import Table

    note = result["calibration"]
    assert isinstance(note, dict)
    table = Table(
        title=f"Adaptation ({result['train_examples']} examples + {result['replay_examples']} replayed); "
        f"decision point {LLM_THRESHOLD} before, calibrated {result['threshold']:.4f} after"
    )
    for column in ("set", "metric", "before", f"after at {LLM_THRESHOLD}", "after (calibrated)"):
        table.add_column(column)
    before, raw, after = result["before"], result["after_uncalibrated"], result["after"]
    assert isinstance(before, dict) and isinstance(raw, dict) and isinstance(after, dict)
    for name in before:
        for metric in ("recall", "fpr"):
            cells = [block[name][metric] for block in (before, raw, after)]
            table.add_row(name, metric, *("n/a" if c is None else f"{c:.3f}" for c in cells))
    console.print(table)
    console.print(
        f"calibrated on {note['rows']} {note['source']}: flagged {note['flagged_before']} before, "
        f"{note['flagged_after_uncalibrated']} after at {LLM_THRESHOLD}"
    )
    console.print(f"soft prompt run: {result['run']}; details in {out / 'adaptation.json'}")
