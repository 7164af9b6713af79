"""`finmed finance ...`: synthetic data, numeric model fitting, cascade scoring, backtests and training records."""

from __future__ import annotations

import uuid
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


def default_numeric_path() -> Path:
    """Where `fit` saves and `score` loads the numeric model unless told otherwise."""
    return get_settings().data_dir / "finance" / "numeric.joblib"


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
    for bad in result.bad[:20]:
        err_console.print(f"row {bad.row}: {bad.reason}", highlight=False)
    if result.bad:
        err_console.print(
            f"{len(result.bad)} bad row(s) skipped; {len(result.frame)} good row(s) kept", highlight=False
        )
    if result.frame.empty:
        raise ValidationError(f"{path}: no valid rows to process")
    return result


def _llm(model: str | None, adapter: Path | None, budget: int):  # noqa: ANN202
    """The adjudicating LLM: an exported ONNX folder (genai_config.json inside) or an in-process model."""
    if budget <= 0:
        return None
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
) -> None:
    """Fit the numeric screening model on labelled transactions."""
    from domains.finance.features import compute_features
    from domains.finance.numeric import NumericModel

    data = _ingest(input_path, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    model = NumericModel.fit(compute_features(data.frame, data.extra_features), y)
    path = model.save(out or default_numeric_path())
    console.print(f"numeric model saved to {path} (threshold {model.threshold:.4f})")


@app.command()
def score(
    input_path: Path = typer.Option(..., "--in", help="Transactions to score (.csv or .parquet)."),
    out: Path = typer.Option(..., "--out", help="Scored output (.csv or .parquet)."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    numeric_model: Path = typer.Option(None, "--numeric-model", help="Numeric model file (default from `fit`)."),
    llm_budget: int = typer.Option(0, "--llm-budget", help="Most transactions the LLM adjudicates."),
    model: str = typer.Option(
        None, "--model", help="LLM: a model folder, an exported ONNX folder, or 'default' (FINMED_BASE_MODEL)."
    ),
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
    """Score transactions: numeric screen on all, LLM on a budgeted selection, fused level per row."""
    from domains.finance.features import compute_features, with_features
    from domains.finance.numeric import NumericModel
    from domains.finance.pipeline import CascadePolicy, score_frame

    if store and not as_user:
        raise ValidationError("--store records review items and needs --as USER (or FINMED_USER)")

    numeric = NumericModel.load(numeric_model or default_numeric_path())
    data = _ingest(input_path, mapping)
    extra = [c for c in numeric.columns if c in data.extra_features]
    llm = _llm(model, adapter, llm_budget)
    similar = None
    if cases:
        from core.retrieval.store import open_store
        from domains.finance.similar import StoreSimilarCases

        similar = StoreSimilarCases(open_store(get_settings()), cases, tenant=tenant)
    policy = CascadePolicy(budget=llm_budget, language=language, k_examples=k_examples if cases else 0)
    feats = compute_features(data.frame, extra)
    scored = score_frame(data.frame, numeric, llm=llm, similar=similar, policy=policy, extra=extra, features=feats)
    routed = None
    if store:
        from core.auth.users import get_user
        from core.db.engine import get_engine, session_scope
        from core.db.migrate import require_current
        from domains.finance.routing import route_assessments
        from domains.finance.store import store_assessments

        engine = get_engine()
        require_current(engine)
        version = f"numeric:{(numeric_model or default_numeric_path()).name}" + (f"+llm:{llm.name}" if llm else "")
        rows = with_features(data.frame, feats)
        with session_scope(engine) as session:
            user = get_user(session, as_user)
            store_assessments(session, scored=scored, batch_id=uuid.uuid4().hex, model_version=version)
            routed = route_assessments(session, user=user, scored=scored, rows=rows, model_name=version)
    scored.insert(2, "source_row", data.frame["source_row"].to_numpy())
    _write_table(scored, out)
    if routed is not None:
        console.print(f"stored; {routed['recorded']} outputs recorded, {routed['queued']} queued for review")
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
    llm_budget: int = typer.Option(0, "--llm-budget", help="Most test transactions the LLM adjudicates."),
    model: str = typer.Option(
        None, "--model", help="LLM: a model folder, an exported ONNX folder, or 'default' (FINMED_BASE_MODEL)."
    ),
    adapter: Path = typer.Option(None, "--adapter", help=ADAPTER_HELP),
    finetune: bool = typer.Option(
        False, "--finetune", help="Train the finance adapter on the early part first (into OUT/adapter) and use it."
    ),
    max_records: int = typer.Option(384, help="With --finetune: most training records."),
    k_examples: int = typer.Option(
        None, help="Similar labelled cases per prompt (default 2 for a base model, 0 with an adapter)."
    ),
) -> None:
    """Time-split backtest (earliest 70% fit, latest 30% test) of numeric, LLM and fused variants."""
    from domains.finance.backtest import run_backtest, write_report
    from domains.finance.pipeline import CascadePolicy

    if finetune and adapter is not None:
        raise ValidationError("--finetune trains its own adapter: leave out --adapter")
    if finetune and llm_budget <= 0:
        raise ValidationError("--finetune needs --llm-budget > 0 (the adapter is only used by LLM adjudication)")
    data = _ingest(input_path, mapping, exclude=(label_column,))
    y = _labels(data.frame, label_column)
    llm = None if finetune else _llm(model, adapter, llm_budget)
    tuned = finetune or adapter is not None
    policy = CascadePolicy(budget=llm_budget, k_examples=k_examples if k_examples is not None else (0 if tuned else 2))
    result = run_backtest(
        data.frame,
        y,
        extra=data.extra_features,
        llm=llm,
        policy=policy,
        finetune_dir=out / "adapter" if finetune else None,
        finetune_records=max_records,
    )
    write_report(result, out)
    m = result.metrics
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
