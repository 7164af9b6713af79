"""`finmed serve`: run the model server (uvicorn) and manage its API keys (`finmed serve keys ...`)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.table import Table

from core.console import console
from core.errors import ValidationError
from core.settings import get_settings

app = typer.Typer(
    help="Serve exported models over an OpenAI-compatible HTTP API (see configs/serve-default.yaml).",
    invoke_without_command=True,
)
keys_app = typer.Typer(
    help="API keys of the model server (stored hashed, shown once, each acting as one role); for the operator.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@app.callback()
def serve(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="Serving YAML (models, batching limits)."),
    model: list[str] = typer.Option([], "--model", "-m", help="NAME=PATH of an exported folder; repeatable."),
    host: str | None = typer.Option(None, help="Interface (default: config host, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: config port or FINMED_API_PORT)."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Do not require API keys (loopback experiments only)."),
) -> None:
    """Load the models and serve /v1/models, /v1/completions, /v1/chat/completions, /metrics, /healthz, /readyz.

    Requests are batched per model (max_batch_size, max_wait_ms) and a chat's system turn is computed once and
    reused (prefix_cache); outputs can be constrained (guided_regex / guided_choice / guided_json / response_format).
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from core.db.engine import make_engine
    from core.db.migrate import require_current
    from core.serving.app import create_app
    from core.serving.config import ServeConfig, load_serve_config, parse_model_option

    settings = get_settings()
    if config is not None:
        cfg = load_serve_config(config)
        if model:
            cfg = cfg.model_copy(update={"models": cfg.models + [parse_model_option(m) for m in model]})
            cfg = ServeConfig.model_validate(cfg.model_dump())
    elif model:
        cfg = ServeConfig(models=[parse_model_option(m) for m in model])
    else:
        raise ValidationError("nothing to serve: give --config FILE or --model NAME=PATH")
    if no_auth:
        cfg = cfg.model_copy(update={"require_api_key": False})
    engine = None
    if cfg.require_api_key:
        engine = make_engine(settings.db_url)
        require_current(engine)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    application = create_app(cfg, models_dir=settings.models_dir, engine=engine)
    bind_host, bind_port = host or cfg.host, port if port is not None else (cfg.port or settings.api_port)
    console.print(f"serving {', '.join(m.name for m in cfg.models)} on http://{bind_host}:{bind_port}/v1")
    uvicorn.run(application, host=bind_host, port=bind_port, log_level="warning")


def _session():  # type: ignore[no-untyped-def]
    from core.db.engine import make_engine, session_scope
    from core.db.migrate import require_current

    engine = make_engine(get_settings().db_url)
    require_current(engine)
    return session_scope(engine)


@keys_app.command("add")
def keys_add(
    name: str = typer.Argument(..., help="Client name, e.g. finance-dashboard."),
    role: str = typer.Option(
        ..., help="Role the key acts as: analyst | radiologist | compliance | engineer (/metrics) | admin."
    ),
) -> None:
    """Create an API key for client NAME acting as ROLE and print it once (only its hash is stored)."""
    from core.serving.keys import add_key

    with _session() as session:
        key = add_key(session, name=name, role=role, actor="cli")
    console.print(f"API key for {name} ({role}; shown once, store it now):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys: name, role, hint, active, created, revoked (never the keys themselves)."""
    from core.serving.keys import list_keys

    table = Table("name", "role", "hint", "active", "created", "revoked")
    with _session() as session:
        for row in list_keys(session):
            revoked = f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "-"
            active = "yes" if row.active else "no"
            table.add_row(row.name, row.role, row.key_hint + "...", active, f"{row.created_at:%Y-%m-%d}", revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name: str = typer.Argument(..., help="Client name.")) -> None:
    """Revoke the API key of client NAME (servers refuse it from their next request on)."""
    from core.serving.keys import revoke_key

    with _session() as session:
        revoke_key(session, name=name, actor="cli")
    console.print(f"revoked API key {name}")
