"""`finmed review ...`: a thin face over the review queue services.

The CLI runs where the database is, so it acts as a named user (`--as`, or FINMED_USER) without a password; the
role checks are the same the app and the API apply.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from core.auth.users import get_user
from core.console import AS_USER, console, parse_date
from core.db.migrate import migrated_session
from core.review import exports, queue
from core.review.tables import ModelOutput

app = typer.Typer(help="Review queue: list, claim, decide, export.", no_args_is_help=True)


@app.command("queue")
def queue_cmd(
    as_user: str = AS_USER,
    domain: str = typer.Option(None, help="finance | medical (default: both)."),
    state: list[str] = typer.Option(None, help="Only these states (repeatable)."),
    limit: int = typer.Option(50, help="At most this many rows."),
) -> None:
    """List review items of the queues your role works (compliance and admin see all)."""
    with migrated_session() as session:
        rows = queue.list_items(
            session, user=get_user(session, as_user), domain=domain, states=state or None, limit=limit
        )
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
    with migrated_session() as session:
        user = get_user(session, as_user)
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
    with migrated_session() as session:
        item = queue.decide(
            session,
            user=get_user(session, as_user),
            item_id=item_id,
            decision=decision,
            reason=reason,
            edited_text=edited,
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
    start = parse_date(since, "--since")
    with migrated_session() as session:
        n = exports.export_items(session, user=get_user(session, as_user), since=start, fmt=fmt, out=out)
    console.print(f"wrote {n} items to {out}")


@app.command("to-training")
def to_training(
    domain: str = typer.Option(..., help="finance | medical"),
    out: Path = typer.Option(..., help="JSONL file of training records (replaced atomically)."),
    as_user: str = AS_USER,
) -> None:
    """Turn approved and edited items into fine-tuning records (the edit is the target)."""
    with migrated_session() as session:
        n = exports.to_training(session, user=get_user(session, as_user), domain=domain, out=out)
    console.print(f"wrote {n} training records to {out}")
