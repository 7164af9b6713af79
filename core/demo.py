"""`finmed demo`: the first-run bootstrap headless, then a summary read back from the database.

The summary has what each domain's bootstrap said it did, and what the database holds now: each domain's outcome
counts (risk levels, drafts; `DomainPlugin.extras["outcome_counts"]`), the review backlog by queue, the model
versions with their quantization report line, whether the audit chain verifies, and where the files are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.atomic import atomic_file
from core.audit.verify import verify
from core.auth.users import get_user
from core.bootstrap import BootstrapResult
from core.db.engine import session_scope
from core.db.tables import ModelVersion
from core.monitoring.outcome_metrics import outcome_counts
from core.review.states import FINAL_STATES
from core.review.tables import QUEUES, ReviewItem
from core.settings import Settings


@dataclass
class DemoSummary:
    """What `finmed demo` prints (and writes as JSON with --json); passwords never appear here."""

    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    review_backlog: dict[str, int] = field(default_factory=dict)
    review_states: dict[str, dict[str, int]] = field(default_factory=dict)
    model_versions: list[dict[str, Any]] = field(default_factory=list)
    serve_notes: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The summary as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)


def report_line(metrics: dict[str, Any], precision: str) -> str:
    """A model version's quantization report in one line (from the quant-report row it was registered with)."""
    if metrics.get("task_metric") is None:
        return (
            f"{precision}: fp32 reference, no quantization report" if precision == "fp32" else f"{precision}: no report"
        )
    parts = [f"{precision}: task metric {metrics['task_metric']:.3f}"]
    if metrics.get("task_drop_pts") is not None:
        parts[0] += f" (drop {metrics['task_drop_pts']:+.2f} pts vs fp32)"
    if metrics.get("size_mb") is not None:
        parts.append(f"{metrics['size_mb']:.1f} MB")
    if metrics.get("decode_tps_b1") is not None:
        parts.append(f"decode {metrics['decode_tps_b1']:.1f} tok/s (batch 1)")
    if metrics.get("report"):
        parts.append(f"report {metrics['report']}")
    return ", ".join(parts)


def review_counts(session: Session) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(backlog by queue: items without a final decision; item counts by queue and state)."""
    states: dict[str, dict[str, int]] = {queue: {} for queue in QUEUES}
    rows = session.execute(
        select(ReviewItem.queue, ReviewItem.state, func.count()).group_by(ReviewItem.queue, ReviewItem.state)
    )
    for queue, state, n in rows:
        states.setdefault(queue, {})[state] = n
    backlog = {queue: sum(n for s, n in by.items() if s not in FINAL_STATES) for queue, by in states.items()}
    return backlog, states


def version_rows(session: Session) -> list[dict[str, Any]]:
    """Every registered model version with its status and report line, by name then version."""
    versions = session.scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version))
    return [
        {
            "name": v.name,
            "version": v.version,
            "precision": v.precision,
            "method": v.method,
            "status": v.status,
            "path": v.path,
            "report": report_line(v.metrics or {}, v.precision),
        }
        for v in versions
    ]


def collect_summary(settings: Settings, result: BootstrapResult) -> DemoSummary:
    """Read the summary back from the database after `result`'s bootstrap."""
    summary = DemoSummary(domains=result.domains, skipped=result.skipped, serve_notes=result.serve_notes)
    with session_scope(result.engine) as session:
        summary.outcomes = outcome_counts(session)
        summary.review_backlog, summary.review_states = review_counts(session)
        summary.model_versions = version_rows(session)
        report = verify(session, user=get_user(session, result.admin))
        summary.audit = {"ok": report.ok, "checked": report.checked, "head": report.head, "reason": report.reason}
    summary.files = {
        "data folder": str(settings.data_dir.resolve()),
        "database": result.engine.url.render_as_string(hide_password=True),
        "base model": result.base_model,
        "models": str(settings.models_dir.resolve()),
        "training runs": str(settings.runs_dir.resolve()),
        "vectors": settings.weaviate_url or str(Path(str(settings.lancedb_dir)).resolve()),
        "logs of `finmed up`": str((settings.data_dir / "logs").resolve()),
        "server config": str(result.serve_config) if result.serve_config else "none (no model version registered)",
    }
    return summary


def write_summary(summary: DemoSummary, path: Path) -> None:
    """Write the summary as JSON atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(summary.to_json() + "\n", encoding="utf-8")


def render(summary: DemoSummary, console: Console) -> None:
    """Print the summary: per-domain counts, review backlog, model versions, audit chain, files."""

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    for name, counts in summary.domains.items():
        shown = ", ".join(f"{key} {value}" for key, value in counts.items()) or "nothing to report"
        say(f"[bold]{name}[/]: {shown}")
    for name, why in summary.skipped.items():
        say(f"[bold]{name}[/]: skipped ({why})")
    for domain, measures in summary.outcomes.items():
        for measure, values in measures.items():
            mix = ", ".join(f"{value}: {n}" for value, n in values.items()) or "none"
            say(f"{domain} {measure.replace('_', ' ')}: {mix}")
    backlog = ", ".join(f"{queue} {n}" for queue, n in summary.review_backlog.items())
    say(f"review backlog by queue: {backlog} (total {sum(summary.review_backlog.values())})")
    table = Table("model", "version", "status", "quantization report", title="model versions")
    for row in summary.model_versions:
        table.add_row(row["name"], str(row["version"]), row["status"], row["report"])
    if summary.model_versions:
        console.print(table)
    else:
        say("model versions: none registered")
    for note in summary.serve_notes:
        say(f"serving: {note}")
    audit = summary.audit
    if audit.get("ok"):
        say(f"audit chain: verified, {audit['checked']} events, head {str(audit['head'])[:16]}...")
    else:
        say(f"[red]audit chain: BROKEN[/] after {audit.get('checked')} events: {audit.get('reason')}")
    for what, where in summary.files.items():
        say(f"{what}: {where}")
