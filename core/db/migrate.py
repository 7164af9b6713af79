"""Alembic commands in code: upgrade, downgrade, current and the ORM-vs-migrations drift check."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from core.db.engine import check_connection, get_engine, session_scope
from core.errors import DatabaseError, FinmedError


def _migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).parent


def alembic_config(engine: Engine) -> Config:
    """An Alembic Config pointing at the packaged migrations, for `engine`'s database."""
    cfg = Config(stdout=io.StringIO())
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def _with_connection(engine: Engine, fn, *args) -> None:  # type: ignore[no-untyped-def]
    check_connection(engine)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        try:
            fn(cfg, *args)
        except CommandError as exc:
            raise FinmedError(f"migration failed: {exc}") from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to `revision` (default: the newest)."""
    _with_connection(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str = "-1") -> None:
    """Downgrade the database to `revision` ('base' removes every table)."""
    _with_connection(engine, command.downgrade, revision)


def head_revision() -> str | None:
    """The newest revision the packaged migrations know."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    check_connection(engine)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_current(engine: Engine) -> None:
    """Raise a clear error when the database is not at the head revision.

    Raises:
        DatabaseError: naming the revision found and the command that fixes it.
    """
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseError(
            f"database is at revision {current or 'none'}, code expects {head}: run `finmed db upgrade`"
        )


def migrated_session():  # type: ignore[no-untyped-def]
    """A committing session (context manager) on the configured database, refused unless it is migrated."""
    engine = get_engine()
    require_current(engine)
    return session_scope(engine)


def schema_drift(engine: Engine) -> list[object]:
    """Differences between the ORM models and the migrated database (empty when they agree)."""
    from core.db.base import Base
    from core.db.table_modules import import_table_modules

    import_table_modules()

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))
