"""`finmed metrics ...`: run the suite's metrics exporter, list every metric, register the scrape key."""

from __future__ import annotations

import typer
from rich.table import Table

from core.console import console
from core.settings import get_settings

app = typer.Typer(
    help="Prometheus metrics: the suite exporter (review queue, jobs, training runs, domain outcomes) and the "
    "scrape key.",
    no_args_is_help=True,
)


def _migrated_engine():  # type: ignore[no-untyped-def]
    from core.db.engine import make_engine
    from core.db.migrate import require_current

    engine = make_engine(get_settings().db_url)
    require_current(engine)
    return engine


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Interface (0.0.0.0 inside a container)."),
    port: int = typer.Option(None, help="Port (default FINMED_METRICS_PORT, 9400)."),
) -> None:
    """Serve /metrics (Bearer FINMED_SCRAPE_KEY when set) and /healthz until stopped."""
    import uvicorn

    from core.monitoring.exporter import create_exporter_app

    settings = get_settings()
    application = create_exporter_app(_migrated_engine(), settings.data_dir, scrape_key=settings.scrape_key)
    bind_port = port or settings.metrics_port
    auth = "scrape key required" if settings.scrape_key else "no scrape key set (FINMED_SCRAPE_KEY): open"
    console.print(f"metrics exporter on http://{host}:{bind_port}/metrics ({auth})")
    uvicorn.run(application, host=host, port=bind_port, log_level="warning")


@app.command("list")
def list_cmd() -> None:
    """List every metric the suite exports: name, type, endpoint and meaning (read from the registries)."""
    from core.monitoring.exporter import metric_catalog

    table = Table("metric", "type", "endpoint", "meaning")
    for info in metric_catalog(_migrated_engine()):
        table.add_row(info.name, info.type, info.endpoint, info.help)
    console.print(table)


@app.command("sync-key")
def sync_key_cmd() -> None:
    """Store FINMED_SCRAPE_KEY as the model server's API key `prometheus` (compose's migrate job runs this)."""
    from core.db.engine import session_scope
    from core.monitoring.scrape_key import KEY_NAME, sync_scrape_key

    with session_scope(_migrated_engine()) as session:
        outcome = sync_scrape_key(session, key=get_settings().scrape_key)
    console.print(f"scrape key: API key {KEY_NAME!r} {outcome}")
