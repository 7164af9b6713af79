"""The `finmed` command: core sub-commands plus whatever domains register through core.plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from core.audit.cli import app as audit_app
from core.auth.cli import app as users_app
from core.console import console, err_console
from core.data.cli import app as data_app
from core.db.cli import app as db_app
from core.errors import FinmedError
from core.finetune.cli import train as finetune_train
from core.jobs.cli import jobs_app
from core.jobs.cli import worker as jobs_worker
from core.models.cli import app as model_app
from core.monitoring.cli import app as metrics_app
from core.quantize.cli import app as quantize_app
from core.retrieval.cli import app as index_app
from core.review.cli import app as review_app
from core.serving.cli import app as serve_app
from core.settings import get_settings

app = typer.Typer(
    name="finmed",
    help="finmed: fine-tune, quantize, export, serve and review domain LLMs for finance and medicine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")
app.add_typer(users_app, name="users")
app.add_typer(review_app, name="review")
app.add_typer(audit_app, name="audit")
app.add_typer(index_app, name="index")
app.add_typer(serve_app, name="serve")
app.add_typer(metrics_app, name="metrics")
app.add_typer(data_app, name="data")
app.add_typer(jobs_app, name="jobs")
app.command("worker")(jobs_worker)
app.command("train")(finetune_train)
app.add_typer(quantize_app)  # top-level `export` and `quant-report`

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _state["debug"] = debug


@app.command()
def doctor() -> None:
    """Print versions, database reachability and migration state, model presence, vector store and device."""
    from core.doctor import run_checks

    checks = run_checks(get_settings())
    table = Table("check", "", "detail")
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]problem[/]", check.detail)
    console.print(table)
    if not all(check.ok for check in checks if check.name in ("database", "migrations")):
        raise typer.Exit(1)


@app.command()
def up(
    port: int = typer.Option(None, help="App port (default FINMED_APP_PORT)."),
    api_port: int = typer.Option(None, "--api-port", help="Model server port (default FINMED_API_PORT)."),
    address: str = typer.Option("127.0.0.1", help="Address the app and server listen on (0.0.0.0 in a container)."),
    tiny: bool = typer.Option(False, "--tiny", help="Bootstrap on the tiny random model (a quick look; tests)."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Run the bootstrap steps, then exit."),
    only: str = typer.Option(
        None,
        "--only",
        help="Skip the bootstrap and run just these children, comma-separated: server, worker, app "
        "(compose runs one per container; the server's config is rewritten from the model registry).",
    ),
) -> None:
    """Bootstrap the suite (migrate, base model, users, each domain's default models and demo data, server
    config), then run the model server, the job worker and the app until Ctrl-C stops them together."""
    from core.up import run_suite

    settings = get_settings()
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name or "" for g in app.registered_groups}
    raise typer.Exit(
        run_suite(
            settings,
            commands=names,
            app_port=port or settings.app_port,
            api_port=api_port or settings.api_port,
            address=address,
            tiny=tiny,
            prepare_only=prepare_only,
            only=only,
        )
    )


@app.command()
def demo(
    tiny: bool = typer.Option(False, "--tiny", help="On the tiny random model: the whole flow in a few minutes."),
    json_path: Path = typer.Option(None, "--json", help="Also write the summary as JSON to this file."),
) -> None:
    """Run the bootstrap headless (train/register default models, load, score and draft the demo data, route it to
    review), print a summary read back from the database, and exit (status 1 if the audit chain fails)."""
    from core.bootstrap import bootstrap
    from core.demo import collect_summary, render, write_summary
    from core.up import print_passwords, progress_printer

    settings = get_settings()
    result = bootstrap(settings, tiny=tiny, progress=progress_printer())
    print_passwords(result)
    summary = collect_summary(settings, result)
    result.engine.dispose()
    render(summary, console)
    if json_path is not None:
        write_summary(summary, json_path)
        console.print(f"summary: {json_path}")
    if not summary.audit.get("ok"):
        raise typer.Exit(1)


def _mount_plugins() -> None:
    from core.plugins import load_plugins

    for plugin in load_plugins():
        if plugin.cli is not None:
            app.add_typer(plugin.cli, name=plugin.name)


def main() -> None:
    """Console-script entry: run the app and turn project errors into one line and an exit code."""
    debug = "--debug" in sys.argv[1:]
    try:
        _mount_plugins()
        app()
    except FinmedError as exc:
        if debug or _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
