"""`finmed db ...`: migrate the configured database with Alembic."""

from __future__ import annotations

import typer

from core.console import console
from core.db import migrate
from core.db.engine import make_engine
from core.settings import get_settings

app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)


def _engine():  # type: ignore[no-untyped-def]
    return make_engine(get_settings().db_url)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to REVISION (default: newest)."""
    engine = _engine()
    migrate.upgrade(engine, revision)
    console.print(f"database at revision {migrate.current_revision(engine)}")


@app.command()
def downgrade(revision: str = typer.Argument("-1", help="Target revision; 'base' removes every table.")) -> None:
    """Downgrade the database to REVISION (default: one step back)."""
    engine = _engine()
    migrate.downgrade(engine, revision)
    console.print(f"database at revision {migrate.current_revision(engine) or 'base'}")


@app.command()
def current() -> None:
    """Print the database's revision and the newest one the code knows."""
    engine = make_engine(get_settings().db_url, create_dirs=False)
    console.print(f"current: {migrate.current_revision(engine) or 'none'}  head: {migrate.head_revision()}")
