"""The background job that walks the audit chain, so the compliance page shows the last result and its time
instead of re-walking the whole chain on every click."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from core.audit.verify import AUDITOR_ROLES, verify
from core.jobs.context import JobContext
from core.jobs.kinds import JobKind

KIND = "audit.verify"


def _run(ctx: JobContext) -> dict[str, Any]:
    anchor = ctx.params.get("anchor") or None
    with ctx.session() as session:
        user = ctx.acting_user(session)
        report = verify(
            session,
            user=user,
            anchor=anchor,
            progress=lambda done, total: ctx.progress(done / total if total else 1.0, f"{done} of {total} events"),
        )
    return {**asdict(report), "anchor": anchor}


verify_job = JobKind(run=_run, roles=AUDITOR_ROLES, title="Audit chain verification", shared=True)
