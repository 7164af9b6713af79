"""The `finmed` command: core sub-commands plus whatever domains register through core.plugins."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from core.audit.cli import app as audit_app
from core.auth.cli import app as users_app
from core.console import console, err_console
from core.db.cli import app as db_app
from core.errors import FinmedError
from core.finetune.cli import train as finetune_train
from core.jobs.cli import jobs_app
from core.jobs.cli import worker as jobs_worker
from core.models.cli import app as model_app
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
    address: str = typer.Option("127.0.0.1", help="Address the app listens on (0.0.0.0 inside a container)."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Migrate, prepare the model and admin, then exit."),
) -> None:
    """Prepare the embedded default (migrations, base model, first admin) and serve the app until Ctrl-C."""
    from core.up import prepare, run_app

    settings = get_settings()
    password = prepare(settings)
    if password:
        console.print(f"created user admin; password (shown once): [bold]{password}[/]")
    if not prepare_only:
        raise typer.Exit(run_app(settings, port=port or settings.app_port, address=address))


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
