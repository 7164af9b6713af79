"""`finmed up` / `finmed demo` step of the medical domain (DomainPlugin.bootstrap): make drafting usable on a fresh
install, skipping whatever is already done.

1. Synthetic reports of one demo hospital (DATA_DIR/medical/demo/), unless present.
2. If the hospital has no registered model version: stage 1 (unless its base folder exists; its general corpus
   leaves the demo hospital's style out), registered as `medical-stage1`, then the hospital's stage-2 adapter,
   registered as `medical-<hospital>`; both exported at
   exports.RECOMMENDED_PRECISION beside fp32 and registered with their measured drop (fp32 when the recommended
   precision fails the accuracy gate), so the model server serves them. Stage 1 trains 40 steps here (a quick start);
   the quick profile (`tiny`) trains a few steps on a few records.
3. The hospital's prior reports indexed in the vector store (idempotent: stable ids).
4. Demo studies drafted through ServingState.generate, stored and routed to the radiologist worklist, unless
   drafts for them exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.plugins import BootstrapContext

HOSPITAL = "st_marys"


def bootstrap(ctx: BootstrapContext) -> dict[str, Any]:
    """Run the steps of the module docstring; returns {"drafts", "queued", "indexed", "model_versions"}."""
    from core.auth.users import get_user
    from core.db.engine import session_scope
    from core.models.registry import list_versions
    from core.settings import get_settings
    from domains.medical import pipeline
    from domains.medical.ingest import read_reports
    from domains.medical.synthetic import generate, write_folder
    from domains.medical.tables import MedicalDraft
    from domains.medical.training import Stage1Mix, quick_overrides, train_stage1, train_stage2

    say = ctx.progress
    root = pipeline.medical_dir(ctx.data_dir)
    n_history, n_demo = (24, 4) if ctx.tiny else (300, 12)
    overrides = quick_overrides(3) if ctx.tiny else []
    history = root / "demo" / f"reports-{HOSPITAL}"
    if not history.is_dir():
        say(f"medical: writing {n_history} synthetic {HOSPITAL} reports")
        write_folder(generate(n_history, hospital=HOSPITAL, seed=0), history)
    reports, _ = read_reports(history, hospital=HOSPITAL).usable(need_impression=True)
    name = pipeline.model_name(HOSPITAL)
    with session_scope(ctx.engine) as session:
        user = get_user(session, ctx.actor)
        have = {v.name for v in list_versions(session, user=user)}
    if name not in have:
        base_folder = pipeline.stage1_base(ctx.data_dir)
        if not base_folder.is_dir():
            say("medical: training stage 1 (general medical knowledge)" + (" (quick profile)" if ctx.tiny else ""))
            mix = (Stage1Mix(reports=24, per_source=20) if ctx.tiny else Stage1Mix()).excluding(HOSPITAL)
            # `finmed up` keeps to 40 stage-1 steps (the full 240 of configs/medical-stage1.yaml take ~15 min on 2
            # cores); `finmed medical train --stage 1` trains the full config
            steps = overrides or ["train.max_steps=40"]
            train_stage1(base_folder.parent, base=ctx.base_model, overrides=steps, mix=mix,
                         show_progress=False)  # fmt: skip
        if pipeline.STAGE1_NAME not in have:
            say("medical: exporting stage 1 and measuring it against fp32")
            with session_scope(ctx.engine) as session:
                version = pipeline.register_stage1(session, user=get_user(session, ctx.actor),
                                                   data_dir=ctx.data_dir, base_folder=base_folder)  # fmt: skip
                say(f"medical: {version.name} v{version.version}: {version.metrics['export_note']}")
        say(f"medical: training the {HOSPITAL} stage-2 adapter")
        run = train_stage2(reports, root / "runs", hospital=HOSPITAL, base=str(base_folder), overrides=overrides,
                           show_progress=False)  # fmt: skip
        say(f"medical: exporting the {HOSPITAL} adapter and measuring it against fp32")
        with session_scope(ctx.engine) as session:
            version = pipeline.register_hospital(session, user=get_user(session, ctx.actor), data_dir=ctx.data_dir,
                                                 hospital=HOSPITAL, run_dir=run, base=str(base_folder),
                                                 reports=reports)  # fmt: skip
            say(f"medical: {version.name} v{version.version}: {version.metrics['export_note']}")
    settings = get_settings()
    say(f"medical: indexing {len(reports)} prior {HOSPITAL} reports")
    from core.retrieval.embeddings import load_embedder
    from core.retrieval.store import open_store
    from domains.medical.similar import index_reports

    indexed = index_reports(open_store(settings), load_embedder(settings), reports, hospital=HOSPITAL)
    demo = [r for r in read_reports(_demo_studies(root, n_demo), hospital=HOSPITAL).reports if r.draftable]
    drafts = queued = 0
    with session_scope(ctx.engine) as session:
        user = get_user(session, ctx.actor)
        done = set(session.scalars(select(MedicalDraft.study_id).where(MedicalDraft.hospital == HOSPITAL)))
        todo = [r for r in demo if r.report_id not in done]
        if todo:
            say(f"medical: drafting {len(todo)} demo studies")
            model = pipeline.open_model(session, user=user, hospital=HOSPITAL)
            try:
                similar = pipeline.priors_for(HOSPITAL, settings, 2)
                _, counts = pipeline.draft_and_store(session, user=user, model=model, reports=todo, hospital=HOSPITAL,
                                                     similar=similar, k_similar=2, concurrency=4)  # fmt: skip
            finally:
                model.engine.close()
            drafts, queued = counts["stored"], counts["queued"]
        versions = [f"{v.name}:{v.version}" for v in list_versions(session, user=user) if v.name.startswith("medical-")]
    return {"drafts": drafts, "queued": queued, "indexed": indexed, "model_versions": versions}


def _demo_studies(root: Any, n: int) -> Any:
    """The demo studies folder (reports of the demo hospital not in its history), written once."""
    from domains.medical.synthetic import generate, write_folder

    folder = root / "demo" / f"studies-{HOSPITAL}"
    if not folder.is_dir():
        write_folder(generate(n, hospital=HOSPITAL, seed=99), folder)
    return folder
