"""`finmed audit ...`: verify the hash chain, anchor its head, list events (compliance and admin)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from core.audit.anchor import read_anchor, write_anchor
from core.audit.read import read_events
from core.audit.verify import verify as verify_log
from core.auth.users import get_user
from core.console import AS_USER, console, err_console, parse_date
from core.db.migrate import migrated_session

app = typer.Typer(help="Hash-chained audit log: verify, anchor, list.", no_args_is_help=True)


@app.command()
def verify(
    as_user: str = AS_USER,
    anchor: str = typer.Option(
        None, help="A head hash recorded earlier, or the file `finmed audit anchor` wrote; fails if rows were cut."
    ),
) -> None:
    """Walk the hash chain; exit 1 and name the first broken row when it does not verify."""
    with migrated_session() as session:
        report = verify_log(session, user=get_user(session, as_user), anchor=read_anchor(anchor) if anchor else None)
    if report.ok:
        console.print(f"audit chain ok: {report.checked} events, head {report.head}")
        return
    where = f"row {report.broken_id}" if report.broken_id is not None else "end of chain"
    err_console.print(f"audit chain broken at {where}: {report.reason} ({report.checked} events verified before it)")
    raise typer.Exit(1)


@app.command("log")
def log_cmd(
    as_user: str = AS_USER,
    since: str = typer.Option(None, help="Events on or after this date (YYYY-MM-DD)."),
    action: str = typer.Option(None, help="Only this action (e.g. review.decided)."),
    limit: int = typer.Option(100, help="At most this many events."),
) -> None:
    """Print audit events, oldest first (compliance, admin)."""
    start = parse_date(since, "--since") if since else None
    with migrated_session() as session:
        events = read_events(session, user=get_user(session, as_user), since=start, action=action, limit=limit)
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


@app.command()
def anchor(
    out: Path = typer.Option(..., help="JSON file to write the current head to (keep it outside the database)."),
    as_user: str = AS_USER,
) -> None:
    """Record the chain's current head in a file; `finmed audit verify --anchor FILE` later proves no row was cut."""
    with migrated_session() as session:
        record = write_anchor(session, user=get_user(session, as_user), path=out)
    console.print(f"anchored head {record['head']} (event {record['event_id']}) in {out}")
