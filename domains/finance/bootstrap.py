"""The finance step of `finmed up` / `finmed demo` (DomainPlugin.bootstrap): make fraud scoring usable on a fresh
install, skipping whatever is already done.

1. The numeric screen: fitted (with its calibrated levels) on a synthetic labelled history, saved to
   DATA_DIR/finance/numeric.joblib.
2. The finance LLM: when no `finance-lora` version is registered, the LoRA adapter is trained on the same history
   (one epoch of configs/finance-lora.yaml, FIRST_RUN; quick profile with `tiny`: the tiny model, two steps),
   exported at int8 (int4 loses the answer format, see bench/results/finance.md) and registered with the model
   registry.
3. Labelled cases indexed in the vector store (collection `finance_cases`) for few-shot examples.
4. Demo transactions scored through the scoring service, stored and routed to review (batch `finance-demo`).

Returns the counts the demo prints: rows by risk level, items queued, model versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.db.engine import session_scope
from core.db.tables import ModelVersion
from core.plugins import BootstrapContext

LLM_NAME = "finance-lora"
CASES = "finance_cases"
DEMO_BATCH = "finance-demo"
QUICK = ["train.epochs=1", "train.max_steps=2", "train.batch_size=4", "method.lora_layers=null"]
# The first run's profile: configs/finance-lora.yaml on 384 records for one epoch (48 steps, ~215 s at bf16 on 2 AMX
# cores) instead of its two, so a fresh clone opens a working suite within 15 minutes (README: Timing the first run).
FIRST_RUN = ["train.epochs=1"]


def _registered(session: Any) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.name == LLM_NAME, ModelVersion.status != "retired")
        .order_by(ModelVersion.version.desc())
    )


def bootstrap(ctx: BootstrapContext) -> dict[str, Any]:
    """Run the steps of the module docstring; see core.plugins.BootstrapContext for `ctx`."""
    from core.auth.users import get_user
    from core.settings import get_settings
    from domains.finance.features import compute_features
    from domains.finance.numeric import NumericModel
    from domains.finance.screen import fit_screen
    from domains.finance.synthetic import generate
    from domains.finance.tables import Assessment

    home = Path(ctx.data_dir) / "finance"
    home.mkdir(parents=True, exist_ok=True)
    history = generate(60 if ctx.tiny else 600, seed=0, days=20 if ctx.tiny else 45, fraud_rate=0.2)
    labels = history["is_fraud"].to_numpy()
    feats = compute_features(history)
    done: list[str] = []

    numeric_path = home / "numeric.joblib"
    if numeric_path.is_file():
        numeric = NumericModel.load(numeric_path)
        done.append("numeric screen")
    else:
        ctx.progress("finance: fitting the numeric screen and its risk levels on synthetic history")
        numeric = fit_screen(history, labels, feats, max_iter=40 if ctx.tiny else 150)
        numeric.save(numeric_path)

    with session_scope(ctx.engine) as session:
        actor = get_user(session, ctx.actor)
        version = _registered(session)
        if version is None:
            version = _train_export_register(ctx, session, actor, history, labels, feats, home)
        else:
            done.append(f"{LLM_NAME} v{version.version}")
        llm_version = f"{version.name}:v{version.version}"

    settings = get_settings()
    from core.retrieval.store import open_store
    from domains.finance.similar import index_cases
    from domains.finance.training import select_rows

    store = open_store(settings)
    if CASES in store.list_collections() and store.count(CASES) > 0:
        done.append("labelled cases")
    else:
        ctx.progress("finance: indexing labelled cases for few-shot examples")
        from domains.finance.features import reasons_for, with_features

        rows = select_rows(labels, reasons_for(feats), 200 if ctx.tiny else 2000)
        index_cases(store, with_features(history, feats, rows), labels[rows], collection=CASES)
    n_cases = store.count(CASES)

    from domains.finance.service import score_batch, store_and_route

    with session_scope(ctx.engine) as session:
        actor = get_user(session, ctx.actor)
        stored = session.scalar(select(func.count()).select_from(Assessment).where(Assessment.batch_id == DEMO_BATCH))
        if stored:
            done.append("demo batch")
            levels = dict(
                session.execute(
                    select(Assessment.risk_level, func.count())
                    .where(Assessment.batch_id == DEMO_BATCH)
                    .group_by(Assessment.risk_level)
                ).all()
            )
            queued = None
        else:
            ctx.progress("finance: scoring demo transactions, storing and routing to review")
            demo = generate(10 if ctx.tiny else 100, seed=1, days=7, fraud_rate=0.3).drop(columns=["is_fraud"])
            result = score_batch(session, user=actor, frame=demo, numeric=numeric, llm_version=llm_version)
            routed = store_and_route(session, user=actor, result=result, batch_id=DEMO_BATCH)
            levels = result.assessments["risk_level"].value_counts().to_dict()
            queued = routed["queued"]
    return {
        "levels": {int(k): int(levels.get(k, 0)) for k in range(6)},
        "queued": queued,
        "cases": int(n_cases),
        "model_versions": {"numeric": numeric.version, "llm": llm_version, "calibration": _cal(numeric)},
        "skipped": done,
    }


def _cal(numeric: Any) -> str | None:
    calibration = getattr(numeric, "calibration", None)
    return calibration.version if calibration is not None else None


def _train_export_register(
    ctx: BootstrapContext, session: Any, actor: Any, history: Any, labels: Any, feats: Any, home: Path
) -> ModelVersion:
    """Train the finance LoRA adapter, export and measure it (int8, else fp32) and register it; returns the version."""
    from core.models.measured import export_measured
    from core.models.registry import register_version
    from domains.finance.training import train_adapter, write_jsonl

    profile = "quick profile" if ctx.tiny else "default profile"
    ctx.progress(f"finance: training the finance adapter ({profile})")
    overrides = [f"model.base={ctx.base_model}", *(QUICK if ctx.tiny else FIRST_RUN)]
    run = train_adapter(
        history,
        labels,
        home / "adapter",
        features=feats,
        max_records=32 if ctx.tiny else 384,
        overrides=overrides,
        show_progress=False,
    )
    ctx.progress("finance: exporting the adapter at int8 beside fp32 and measuring both on held-out transactions")
    measured = export_measured(
        eval_path=write_jsonl(_held_out_records(ctx.tiny), home / "eval.jsonl"),
        out_dir=home / "export",
        precision="int8",
        run_dir=run,
    )
    ctx.progress(f"finance: {measured.note}")
    return register_version(
        session,
        user=actor,
        name=LLM_NAME,
        base_model=measured.base_model,
        method=measured.method,
        precision=measured.precision,
        path=measured.path,
        metrics={"source_run": str(run), **measured.metrics, "export_note": measured.note},
    )


def _held_out_records(tiny: bool) -> list[dict[str, object]]:
    """Chat records of synthetic transactions outside the training history (another seed), frauds included."""
    from domains.finance.features import compute_features, reasons_for
    from domains.finance.synthetic import generate
    from domains.finance.training import select_rows, training_records

    held = generate(40 if tiny else 200, seed=2, days=10, fraud_rate=0.3)
    labels = held["is_fraud"].to_numpy()
    feats = compute_features(held)
    rows = select_rows(labels, reasons_for(feats), 4 if tiny else 16)
    return training_records(held, labels, rows=rows, features=feats)
