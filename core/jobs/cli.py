"""`finmed worker` (run background jobs until SIGTERM or Ctrl-C) and `finmed jobs ...` (list, cancel)."""

from __future__ import annotations

import signal

import typer
from rich.table import Table

from core.console import AS_USER, console
from core.db.engine import get_engine, session_scope
from core.db.migrate import require_current
from core.jobs import service
from core.jobs.kinds import all_kinds

jobs_app = typer.Typer(help="Background jobs (run by `finmed worker`).", no_args_is_help=True)


def worker(
    poll: float = typer.Option(1.0, help="Seconds between looks at an empty queue."),
    once: bool = typer.Option(False, "--once", help="Run the queued jobs, then exit."),
    kind: list[str] = typer.Option(None, "--kind", help="Run only these kinds (repeatable); default every kind."),
) -> None:
    """Run background jobs (audit verification, domain jobs) from the database until SIGTERM or Ctrl-C."""
    from core.jobs.worker import Worker

    engine = get_engine()
    require_current(engine)
    runner = Worker(engine, kinds=kind or None, poll_s=poll)
    if once:
        while runner.run_one() is not None:
            pass
        return
    signals = {sig: signal.signal(sig, lambda _s, _f: runner.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    console.print(f"finmed worker {runner.name}: kinds {', '.join(runner.kinds or sorted(all_kinds()))}")
    try:
        runner.run_forever()
    finally:
        for sig, handler in signals.items():
            signal.signal(sig, handler)
    console.print("worker stopped")


@jobs_app.command("list")
def list_cmd(user: str = AS_USER, limit: int = typer.Option(30, help="How many, newest first.")) -> None:
    """Jobs you may see, newest first."""
    from core.auth.users import get_user

    engine = get_engine()
    require_current(engine)
    table = Table("id", "kind", "status", "progress", "message", "created", "error")
    with session_scope(engine) as session:
        for job in service.list_jobs(session, user=get_user(session, user), limit=limit):
            table.add_row(
                str(job.id),
                job.kind,
                job.status,
                f"{job.progress:.0%}",
                job.message,
                f"{job.created_at:%Y-%m-%d %H:%M:%S}",
                job.error,
            )
    console.print(table)


@jobs_app.command()
def cancel(job_id: int = typer.Argument(..., help="Job id."), user: str = AS_USER) -> None:
    """Cancel a queued job, or ask the worker to stop a running one."""
    from core.auth.users import get_user

    engine = get_engine()
    require_current(engine)
    with session_scope(engine) as session:
        job = service.cancel(session, user=get_user(session, user), job_id=job_id)
        console.print(f"job {job.id}: {job.message}")
