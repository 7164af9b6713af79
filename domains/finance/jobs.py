"""Risk scoring as a background job (`finance.score`): the Risk scoring page submits a file path and its column
mapping, `finmed worker` scores it through the same service as the CLI and the API (domains/finance/service.py)
with the LLM stage's progress on the job, and the page reads the scored batch back when the job has finished.

The scored batch (a service.ScoreResult: assessments, rows with features, rejected rows, versions, bands) is kept
in the data folder (`finance/scored/job-N.joblib`) rather than in the job row: a 100k-row batch does not belong in
a JSON column, and the page needs the whole object to store, route and explain it. The job's result holds the
file's path, the counts and the summary lines every face prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib

from core.errors import NotFoundError, ValidationError
from core.jobs.context import JobContext
from core.jobs.kinds import JobKind
from core.settings import get_settings

KIND = "finance.score"
SCORERS = ("analyst", "engineer")


def scored_dir() -> Path:
    """Where scored batches of jobs are kept (and uploads waiting to be scored)."""
    return get_settings().data_dir / "finance" / "scored"


def _run(ctx: JobContext) -> dict[str, Any]:
    from domains.finance.ingest import read_table
    from domains.finance.service import score_batch

    params = ctx.params
    path = Path(str(params.get("path") or ""))
    if not str(params.get("path") or "").strip():
        raise ValidationError("finance.score: parameter 'path' (the transactions file) is required")
    if not path.is_file():
        raise NotFoundError(f"finance.score: no transactions file at {path}")
    budget = params.get("llm_budget")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise ValidationError(f"finance.score: llm_budget must be a whole number >= 0 or absent, not {budget!r}")
    adapter = str(params.get("adapter") or "").strip()
    ctx.progress(0.0, f"reading {path.name}")
    raw = read_table(path)
    ctx.progress(0.05, f"{len(raw)} rows read; validating and scoring")

    def llm() -> Any:
        from domains.finance.llm import LocalLLM

        ctx.progress(0.1, "loading the LLM")
        return LocalLLM(adapter=Path(adapter) if adapter else None)

    def progress(done: int, total: int) -> None:
        ctx.progress(0.1 + 0.85 * done / max(total, 1), f"LLM adjudication: {done} of {total}")

    with ctx.session() as session:
        user = ctx.acting_user(session)
        result = score_batch(
            session,
            user=user,
            frame=raw,
            mapping=dict(params.get("mapping") or {}),
            llm=llm,
            llm_budget=budget,
            progress=progress,
            source=path.name,
        )
    out = scored_dir() / f"job-{ctx.job_id}.joblib"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part")
    joblib.dump(result, partial)
    partial.replace(out)  # the page never reads a half-written batch
    ctx.progress(1.0, "scored")
    return {
        "result_file": str(out),
        "source": path.name,
        "counts": result.counts(),
        "summary": result.summary_lines(),
    }


def load_result(job_result: dict[str, Any]) -> Any:
    """The ScoreResult a finished `finance.score` job kept.

    Raises:
        NotFoundError: its file was removed (naming it).
    """
    path = Path(str(job_result.get("result_file") or ""))
    if not path.is_file():
        raise NotFoundError(f"the scored batch of this job is gone ({path}); score the file again")
    return joblib.load(path)


score_job = JobKind(run=_run, roles=SCORERS, title="Risk scoring")
