"""`finmed medical ...`: synthetic reports, labels, two-stage training, drafting, backtest, indexing and sign-off."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress

from core.console import AS_USER, console, err_console
from core.errors import ValidationError
from core.settings import get_settings

app = typer.Typer(
    help="Medical report drafting: synth, label, train, draft, backtest, index, worklist, sign, reject, addendum, "
    "agreement.",
    no_args_is_help=True,
)

MAP_HELP = "JSONL/CSV key mapping field=key (repeatable), e.g. --map text=report_text --map report_id=accession."
REPORTS_HELP = "A folder of text reports (one per file), or a .jsonl / .csv file."


def _read(path: Path, mapping: list[str] | None, hospital: str = ""):  # noqa: ANN202  (ingest.Ingested)
    from domains.medical.ingest import parse_mapping, read_reports

    return read_reports(path, parse_mapping(mapping), hospital=hospital)


def _usable(ingested, *, need_impression: bool):  # noqa: ANN001, ANN202
    reports, skipped = ingested.usable(need_impression=need_impression)
    for reason, count in skipped.items():
        err_console.print(f"skipped {count} report(s): {reason}", highlight=False)
    if not reports:
        raise ValidationError(f"{ingested.source}: no usable reports ({', '.join(skipped) or 'none read'})")
    return reports, skipped


def _write_jsonl(rows: list[dict], out: Path) -> None:
    from core.atomic import atomic_file

    with atomic_file(out) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (one .txt report per file)."),
    n: int = typer.Option(200, "--n", help="Number of reports."),
    hospital: str = typer.Option(
        "st_marys",
        help="Report style: a hospital's (st_marys, northgate, riverside, lakeside) or a public corpus's "
        "(public_archive, public_teaching).",
    ),
    seed: int = typer.Option(0, help="Random seed."),
    phi: bool = typer.Option(False, "--phi", help="Add a patient banner (name, MRN, date, phone) to test masking."),
    crlf: bool = typer.Option(False, "--crlf", help="Write Windows line endings."),
) -> None:
    """Write seeded synthetic chest radiograph reports in one hospital's style."""
    from domains.medical.synthetic import STYLES, generate, write_folder

    if n < 1:
        raise ValidationError("--n must be at least 1")
    if hospital not in STYLES:
        raise ValidationError(f"--hospital {hospital!r}: one of {', '.join(STYLES)}")
    write_folder(generate(n, hospital=hospital, seed=seed, phi=phi), out, crlf=crlf)
    console.print(f"wrote {n} {hospital} reports to {out}")


@app.command()
def label(
    reports: Path = typer.Option(..., "--reports", help=REPORTS_HELP),
    out: Path = typer.Option(..., "--out", help="Output JSONL: {report, labels} per report."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
) -> None:
    """Label findings (present / uncertain / absent) over each whole report; not-mentioned findings are left out."""
    from domains.medical.labeler import label_report

    ingested = _read(reports, mapping)
    rows = [{"report": r.report_id, "labels": label_report(r.raw or r.text())} for r in ingested.reports]
    _write_jsonl(rows, out)
    console.print(f"labelled {len(rows)} reports -> {out}")


@app.command()
def train(
    stage: int = typer.Option(..., "--stage", help="1: general medical knowledge; 2: one hospital's adapter."),
    reports: Path = typer.Option(None, "--reports", help=f"Stage 2: the hospital's reports. {REPORTS_HELP}"),
    hospital: str = typer.Option(None, "--hospital", help="Stage 2: the hospital the adapter is for."),
    from_base: bool = typer.Option(False, "--from-base", help="Stage 2: start from the plain base, not stage 1."),
    base: str = typer.Option(None, "--base", help="Base model (default FINMED_BASE_MODEL); stage 1 trains on it."),
    corpus: Path = typer.Option(None, "--corpus", help="Stage 1: extra JSONL records (messages/alpaca/prompt)."),
    exclude_styles: list[str] = typer.Option(
        None,
        "--exclude-style",
        help="Stage 1: leave this synthetic report style out of the general corpus "
        "(repeatable), e.g. the style of a hospital you will test on.",
    ),
    out: Path = typer.Option(None, "--out", help="Output folder (default DATA_DIR/medical/stage1 or /runs)."),
    sets: list[str] = typer.Option(None, "--set", help="Config override section.key=value (repeatable)."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    register_as: str = typer.Option(
        None, "--register-as", envvar="FINMED_USER", help="Export and register the result as this engineer/admin."
    ),
) -> None:
    """Train stage 1 (merged into a stage-1 base) or a hospital's stage-2 LoRA; optionally export and register."""
    from domains.medical import pipeline
    from domains.medical.training import Stage1Mix, train_stage1, train_stage2

    settings = get_settings()
    base = base or settings.base_model
    if stage == 1:
        if reports or hospital or from_base:
            raise ValidationError("--reports, --hospital and --from-base belong to --stage 2")
        target = out or pipeline.stage1_base(settings.data_dir).parent
        mix = Stage1Mix().excluding(*(exclude_styles or []))
        run, folder = train_stage1(target, base=base, corpus=corpus, overrides=sets, mix=mix)
        console.print(f"stage 1 run {run}; stage-1 base {folder} (lineage.json inside)")
        if register_as:
            _register(lambda s, u: pipeline.register_stage1(s, user=u, data_dir=settings.data_dir, base_folder=folder),
                      register_as)  # fmt: skip
        return
    if stage != 2:
        raise ValidationError(f"--stage must be 1 or 2, not {stage}")
    if reports is None or not hospital:
        raise ValidationError("--stage 2 needs --reports DIR|FILE and --hospital NAME")
    pipeline.check_hospital(hospital)
    if corpus is not None or exclude_styles:
        raise ValidationError("--corpus and --exclude-style belong to --stage 1")
    if not from_base:
        stage1 = pipeline.stage1_base(settings.data_dir)
        if not stage1.is_dir():
            raise ValidationError(
                f"no stage-1 base at {stage1}: run `finmed medical train --stage 1` or pass --from-base"
            )
        base = str(stage1)
    usable, skipped = _usable(_read(reports, mapping, hospital), need_impression=True)
    run = train_stage2(usable, out or pipeline.medical_dir(settings.data_dir) / "runs", hospital=hospital, base=base,
                       overrides=sets)  # fmt: skip
    console.print(f"stage 2 run {run} on {len(usable)} reports ({sum(skipped.values())} skipped), base {base}")
    if register_as:
        _register(lambda s, u: pipeline.register_hospital(s, user=u, data_dir=settings.data_dir, hospital=hospital,
                                                          run_dir=run, base=base, reports=usable),
                  register_as)  # fmt: skip


def _register(step, username: str) -> None:  # noqa: ANN001
    from core.auth.users import get_user
    from core.db.migrate import migrated_session

    with migrated_session() as session:
        version = step(session, get_user(session, username))
        console.print(f"registered {version.name} v{version.version} ({version.precision}) -> {version.path}")
        if version.metrics.get("export_note"):
            console.print(f"  {version.metrics['export_note']}")


@app.command()
def draft(
    input_path: Path = typer.Option(..., "--in", help=f"Studies to draft. {REPORTS_HELP}"),
    hospital: str = typer.Option(..., "--hospital", help="Hospital: its adapter and its prior reports are used."),
    out: Path = typer.Option(..., "--out", help="Output JSONL of drafts."),
    model: Path = typer.Option(None, "--model", help="An exported model folder (default: the registered version)."),
    server: str = typer.Option(None, "--server", help="Draft over HTTP through this `finmed serve` URL."),
    api_key: str = typer.Option(None, "--api-key", envvar="FINMED_API_KEY", help="With --server: the API key."),
    k_similar: int = typer.Option(2, help="Similar prior reports of the hospital per prompt (when indexed)."),
    concurrency: int = typer.Option(4, help="Requests in flight at once (the batcher groups them)."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    store: bool = typer.Option(False, "--store", help="Store drafts and route them to the radiologist worklist."),
    as_user: str = typer.Option(None, "--as", envvar="FINMED_USER", help="The user drafts are recorded as."),
) -> None:
    """Draft impressions through the serving layer (in-process or --server) and optionally store and route them."""
    from core.auth.users import get_user
    from core.db.engine import get_engine, session_scope
    from core.db.migrate import require_current
    from domains.medical import pipeline

    pipeline.check_hospital(hospital)
    if store and not as_user:
        raise ValidationError("--store records drafts and needs --as USER (or FINMED_USER)")
    reports, _ = _usable(_read(input_path, mapping, hospital), need_impression=False)
    settings = get_settings()
    engine = get_engine()
    similar = pipeline.priors_for(hospital, settings, k_similar)
    with session_scope(engine) as session:
        user = None
        if store or model is None:
            require_current(engine)
            user = get_user(session, as_user) if as_user else None
        if server:
            if model is None or not api_key:
                raise ValidationError("--server needs --model (the exported folder, for its tokenizer) and --api-key")
            from domains.medical.drafting import HttpEngine

            name = pipeline.model_name(hospital)
            chosen = pipeline.DraftingModel(
                HttpEngine(server, api_key, model=name, tokenizer_dir=model), name, None, ""
            )
        else:
            if model is None and user is None:
                raise ValidationError("reading the registry needs --as USER (or pass --model FOLDER)")
            chosen = pipeline.open_model(session, user=user, hospital=hospital, folder=model)  # type: ignore[arg-type]
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task("drafting", total=len(reports))
                drafts, counts = pipeline.draft_and_store(
                    session if store else None, user=user, model=chosen, reports=reports, hospital=hospital,
                    similar=similar, k_similar=k_similar, concurrency=concurrency,
                    on_done=lambda k: progress.advance(task, k),
                )  # fmt: skip
        finally:
            chosen.engine.close()
    rows = [{"report": d.report.report_id, "draft": d.text, "labels": d.labels, "latency_ms": round(d.latency_ms, 1),
             "priors": d.priors, "model": chosen.name, "model_version": chosen.version} for d in drafts]  # fmt: skip
    _write_jsonl(rows, out)
    tail = f"; stored {counts['stored']}, queued {counts['queued']} for radiologists" if store else ""
    console.print(f"drafted {len(drafts)} impressions -> {out}{tail}")


@app.command()
def backtest(
    reports: Path = typer.Option(..., "--reports", help=REPORTS_HELP),
    out: Path = typer.Option(..., "--out", help="Output folder for metrics.json, drafts.jsonl and report.md."),
    max_steps: int = typer.Option(60, "--max-steps", help="Optimizer steps of each stage-2 training."),
    hospital: str = typer.Option(None, "--hospital", help="Hospital name of the adapters (default: the reports')."),
    base: str = typer.Option(None, "--base", help="Base model (default FINMED_BASE_MODEL)."),
    sets: list[str] = typer.Option(None, "--set", help="Config override of both stages, section.key=value."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
    stage1_records: int = typer.Option(200, "--stage1-records", help="Stage-1 records per vocabulary source."),
    stage1_reports: int = typer.Option(
        1200,
        "--stage1-reports",
        help="Stage-1 general-corpus study -> impression records (synthetic reports in the styles not excluded).",
    ),
    stage1_exclude: list[str] = typer.Option(
        None,
        "--stage1-exclude-style",
        help="Leave this synthetic style out of stage 1's general corpus "
        "(repeatable): the style of your reports, if they are synthetic.",
    ),
    stage1_steps: int = typer.Option(
        None, "--stage1-steps", help="Stage-1 optimizer steps (default: configs/medical-stage1.yaml's)."
    ),
) -> None:
    """Order-kept backtest: stage 2 on the first 80%, drafts for the last 20%, base vs stage2 vs two_stage."""
    from domains.medical.backtest import VARIANTS, run_backtest
    from domains.medical.training import Stage1Mix

    if max_steps < 1 or (stage1_steps is not None and stage1_steps < 1):
        raise ValidationError("--max-steps and --stage1-steps must be at least 1")
    mix = Stage1Mix(reports=stage1_reports, per_source=stage1_records).excluding(*(stage1_exclude or []))
    settings = get_settings()
    ingested = _read(reports, mapping, hospital or "")
    usable, _ = _usable(ingested, need_impression=True)
    n_test = len(usable) - int(round(len(usable) * 0.8))
    with Progress() as progress:
        steps = progress.add_task("backtest", total=7 + 3 * n_test)
        result = run_backtest(
            ingested, out, base=base or settings.base_model, data_dir=settings.data_dir, hospital=hospital or "",
            overrides=list(sets or []), stage2_overrides=[f"train.max_steps={max_steps}"],
            stage1_overrides=[f"train.max_steps={stage1_steps}"] if stage1_steps else [], stage1_mix=mix,
            say=lambda msg: (progress.update(steps, description=msg), progress.advance(steps)),
            advance=lambda k: progress.advance(steps, k),
        )  # fmt: skip
    m = result.metrics
    for name in VARIANTS:
        v = m[name]
        console.print(
            f"{name:9s} finding F1 micro {v['finding_f1_micro']:.3f} | agreement {v['agreement']:.3f}"
            f" | ROUGE-L {v['rouge_l']:.3f} | p95 {v['p95_latency_ms']:.0f} ms"
        )
    console.print(f"-> {out / 'metrics.json'}")


@app.command()
def index(
    reports: Path = typer.Option(..., "--reports", help=REPORTS_HELP),
    hospital: str = typer.Option(..., "--hospital", help="Hospital (vector-store tenant) the reports belong to."),
    mapping: list[str] = typer.Option(None, "--map", help=MAP_HELP),
) -> None:
    """Index a hospital's prior reports (PHI-masked) in the vector store for drafting context."""
    from core.retrieval.embeddings import load_embedder
    from core.retrieval.store import open_store
    from domains.medical import pipeline
    from domains.medical.similar import COLLECTION, index_reports

    pipeline.check_hospital(hospital)
    usable, _ = _usable(_read(reports, mapping, hospital), need_impression=True)
    settings = get_settings()
    n = index_reports(open_store(settings), load_embedder(settings), usable, hospital=hospital)
    console.print(f"indexed {n} prior reports of {hospital} into {COLLECTION}")


@app.command()
def worklist(
    as_user: str = AS_USER,
    hospital: str = typer.Option(None, "--hospital", help="Only this hospital's drafts."),
) -> None:
    """Open drafts of the radiologist worklist, oldest first."""
    from core.auth.users import get_user
    from core.db.migrate import migrated_session
    from domains.medical.signoff import worklist as list_open

    with migrated_session() as session:
        entries = list_open(session, user=get_user(session, as_user), hospital=hospital)
        for e in entries:
            d = e.draft
            console.print(
                f"draft {d.id}  {d.hospital}  {d.study_id}  {e.item.state}  {d.created_at:%Y-%m-%d %H:%M}  "
                f"{d.draft_text[:60]!r}",
                highlight=False,
            )
        console.print(f"{len(entries)} open draft(s)")


@app.command()
def sign(
    draft_id: int = typer.Argument(..., help="The draft's id (see `worklist`)."),
    text: str = typer.Option(None, "--text", help="The edited impression (default: sign the draft as it is)."),
    as_user: str = AS_USER,
) -> None:
    """Sign a draft as a radiologist (edited with --text); the signed report is immutable."""
    from core.auth.users import get_user
    from core.db.migrate import migrated_session
    from domains.medical.signoff import sign_report

    with migrated_session() as session:
        signed = sign_report(session, user=get_user(session, as_user), draft_id=draft_id, text=text)
        console.print(f"signed report {signed.id} (edited: {signed.edited}, ROUGE-L vs draft {signed.rouge_l:.3f})")


@app.command()
def reject(
    draft_id: int = typer.Argument(..., help="The draft's id."),
    reason: str = typer.Option(..., "--reason", help="Why the draft is rejected."),
    as_user: str = AS_USER,
) -> None:
    """Reject a draft as a radiologist."""
    from core.auth.users import get_user
    from core.db.migrate import migrated_session
    from domains.medical.signoff import reject_draft

    with migrated_session() as session:
        reject_draft(session, user=get_user(session, as_user), draft_id=draft_id, reason=reason)
        console.print(f"draft {draft_id} rejected")


@app.command()
def addendum(
    signed_id: int = typer.Argument(..., help="The signed report's id."),
    text: str = typer.Option(..., "--text", help="The correction."),
    as_user: str = AS_USER,
) -> None:
    """Add an audited addendum to a signed report (the report itself never changes)."""
    from core.auth.users import get_user
    from core.db.migrate import migrated_session
    from domains.medical.signoff import add_addendum

    with migrated_session() as session:
        row = add_addendum(session, user=get_user(session, as_user), signed_report_id=signed_id, text=text)
        console.print(f"addendum {row.id} added to signed report {signed_id}")


@app.command()
def agreement(
    as_user: str = AS_USER,
    hospital: str = typer.Option(None, "--hospital", help="Only this hospital."),
) -> None:
    """Agreement between drafts and signed text per radiologist (ROUGE-L, finding agreement, share edited)."""
    from core.auth.users import get_user
    from core.db.migrate import migrated_session
    from domains.medical.signoff import agreement_by_radiologist

    with migrated_session() as session:
        rows = agreement_by_radiologist(session, user=get_user(session, as_user), hospital=hospital)
    for name, m in rows.items():
        fa = "n/a" if m["finding_agreement"] is None else f"{m['finding_agreement']:.3f}"
        console.print(f"{name}: {m['signed']} signed, {m['edited_share']:.0%} edited, ROUGE-L {m['rouge_l']:.3f}, "
                      f"finding agreement {fa}")  # fmt: skip
    if not rows:
        console.print("no signed reports yet")
