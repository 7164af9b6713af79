"""`finmed review ...` and `finmed audit ...`: thin faces over the review and audit services.

The CLI runs where the database is, so it acts as a named user (`--as`, or FINMED_USER) without a password; the
role checks are the same the app and the API apply.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from core.auth.users import get_user
from core.console import console, err_console
from core.db.engine import get_engine, session_scope
from core.db.migrate import require_current
from core.db.models import User
from core.errors import ValidationError
from core.review import audit_log, exports, queue
from core.review.models import ModelOutput

app = typer.Typer(help="Review queue: list, claim, decide, export.", no_args_is_help=True)
audit_app = typer.Typer(help="Hash-chained audit log: verify, list.", no_args_is_help=True)

AS_USER = typer.Option(..., "--as", envvar="FINMED_USER", help="Act as this user (its role is checked).")


def _session():  # type: ignore[no-untyped-def]
    """A committing session on the configured, migrated database (the acting user is resolved inside it)."""
    engine = get_engine()
    require_current(engine)
    return session_scope(engine)


def _user(session: Session, username: str) -> User:
    return get_user(session, username)


def _parse_date(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{option} '{value}' is not a date: use YYYY-MM-DD or an ISO timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@app.command("queue")
def queue_cmd(
    as_user: str = AS_USER,
    domain: str = typer.Option(None, help="finance | medical (default: both)."),
    state: list[str] = typer.Option(None, help="Only these states (repeatable)."),
    limit: int = typer.Option(50, help="At most this many rows."),
) -> None:
    """List review items of the queues your role works (compliance and admin see all)."""
    with _session() as session:
        rows = queue.list_items(session, user=_user(session, as_user), domain=domain, states=state or None, limit=limit)
        table = Table("id", "domain", "queue", "state", "priority", "reasons", "model", "created")
        for item, output in rows:
            table.add_row(
                str(item.id),
                item.domain,
                item.queue,
                item.state,
                str(item.priority),
                ", ".join(item.reasons),
                f"{output.model_name}@{output.model_version}",
                f"{item.created_at:%Y-%m-%d %H:%M}",
            )
    console.print(table)


@app.command()
def claim(
    item_id: int = typer.Argument(None, help="Item to claim; default: the next one of your queues."),
    as_user: str = AS_USER,
    domain: str = typer.Option(None, help="Only claim from this domain."),
    lease_minutes: float = typer.Option(15.0, help="Minutes before an undecided claim returns to the queue."),
) -> None:
    """Claim the next open item (or ITEM_ID) and print it."""
    from datetime import timedelta

    lease = timedelta(minutes=lease_minutes)
    with _session() as session:
        user = _user(session, as_user)
        if item_id is None:
            item = queue.claim_next(session, user=user, domain=domain, lease=lease)
        else:
            item = queue.claim_item(session, user=user, item_id=item_id, lease=lease)
        if item is None:
            console.print("queue is empty")
            return
        output = session.get(ModelOutput, item.output_id)
        assert output is not None
        console.print(
            f"claimed item {item.id} ({item.domain}, {', '.join(item.reasons)}) until {item.lease_expires_at}"
        )
        console.print(f"[bold]prompt[/]\n{output.prompt}\n[bold]model output[/]\n{output.raw_output}", highlight=False)


@app.command()
def decide(
    item_id: int = typer.Argument(..., help="Item you hold a claim on."),
    decision: str = typer.Argument(..., help="approved | rejected | edited | escalated"),
    as_user: str = AS_USER,
    reason: str = typer.Option("", help="Why (required to reject or escalate)."),
    edited_file: Path = typer.Option(None, exists=True, dir_okay=False, help="File with the edited text (edits)."),
) -> None:
    """Record your decision on a claimed item."""
    edited = edited_file.read_text(encoding="utf-8") if edited_file else None
    with _session() as session:
        item = queue.decide(
            session, user=_user(session, as_user), item_id=item_id, decision=decision, reason=reason, edited_text=edited
        )
        console.print(f"item {item.id}: {item.state}")


@app.command()
def export(
    since: str = typer.Option(..., help="Items created on or after this date (YYYY-MM-DD)."),
    fmt: str = typer.Option("jsonl", "--format", help="csv | jsonl"),
    out: Path = typer.Option(..., help="File to write (replaced atomically)."),
    as_user: str = AS_USER,
) -> None:
    """Export review items with outputs and decisions for auditors (compliance, admin)."""
    start = _parse_date(since, "--since")
    with _session() as session:
        n = exports.export_items(session, user=_user(session, as_user), since=start, fmt=fmt, out=out)
    console.print(f"wrote {n} items to {out}")


@app.command("to-training")
def to_training(
    domain: str = typer.Option(..., help="finance | medical"),
    out: Path = typer.Option(..., help="JSONL file of training records (replaced atomically)."),
    as_user: str = AS_USER,
) -> None:
    """Turn approved and edited items into fine-tuning records (the edit is the target)."""
    with _session() as session:
        n = exports.to_training(session, user=_user(session, as_user), domain=domain, out=out)
    console.print(f"wrote {n} training records to {out}")


@audit_app.command()
def verify(
    as_user: str = AS_USER,
    anchor: str = typer.Option(None, help="A head hash recorded earlier; fails if rows were cut from the end."),
) -> None:
    """Walk the hash chain; exit 1 and name the first broken row when it does not verify."""
    with _session() as session:
        report = audit_log.verify(session, user=_user(session, as_user), anchor=anchor)
    if report.ok:
        console.print(f"audit chain ok: {report.checked} events, head {report.head}")
        return
    where = f"row {report.broken_id}" if report.broken_id is not None else "end of chain"
    err_console.print(f"audit chain broken at {where}: {report.reason} ({report.checked} events verified before it)")
    raise typer.Exit(1)


@audit_app.command("log")
def log_cmd(
    as_user: str = AS_USER,
    since: str = typer.Option(None, help="Events on or after this date (YYYY-MM-DD)."),
    action: str = typer.Option(None, help="Only this action (e.g. review.decided)."),
    limit: int = typer.Option(100, help="At most this many events."),
) -> None:
    """Print audit events, oldest first (compliance, admin)."""
    start = _parse_date(since, "--since") if since else None
    with _session() as session:
        events = audit_log.read_events(session, user=_user(session, as_user), since=start, action=action, limit=limit)
        table = Table("id", "time", "actor", "action", "subject", "hash")
        for e in events:
            table.add_row(
                str(e.id),
                f"{e.created_at:%Y-%m-%d %H:%M:%S}",
                e.actor,
                e.action,
                f"{e.subject_type}:{e.subject_id}",
                e.hash[:12],
            )
    console.print(table)
