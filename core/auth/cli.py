"""`finmed users ...`: create, list and unlock the people who sign in (run by the operator who holds the database)."""

from __future__ import annotations

import typer
from rich.table import Table

from core.auth.lockout import unlock_user
from core.auth.roles import validate_role
from core.auth.users import create_user, generate_password, list_users
from core.console import console
from core.db.engine import get_engine, session_scope
from core.db.migrate import require_current

app = typer.Typer(help="Users and roles.", no_args_is_help=True)


@app.command()
def add(
    name: str = typer.Argument(..., help="Username."),
    role: str = typer.Option(..., help="analyst | radiologist | compliance | engineer | admin"),
    password: str = typer.Option(
        None, help="Password; default: generate one and print it once.", envvar="FINMED_NEW_PASSWORD"
    ),
) -> None:
    """Create a user with ROLE."""
    validate_role(role)
    engine = get_engine()
    require_current(engine)
    secret = password or generate_password()
    with session_scope(engine) as session:
        create_user(session, username=name, role=role, password=secret, actor="cli")
    console.print(f"user {name} ({role}) created")
    if not password:
        console.print(f"password (shown once): {secret}")


@app.command("list")
def list_cmd() -> None:
    """List users and their roles."""
    engine = get_engine()
    require_current(engine)
    table = Table("username", "role", "active", "created", "last login", "locked until")
    with session_scope(engine) as session:
        for user in list_users(session):
            table.add_row(
                user.username,
                user.role,
                str(user.active),
                f"{user.created_at:%Y-%m-%d %H:%M}",
                f"{user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at else "-",
                f"{user.locked_until:%Y-%m-%d %H:%M} UTC" if user.locked_until else "-",
            )
    console.print(table)


@app.command()
def unlock(name: str = typer.Argument(..., help="Username.")) -> None:
    """Lift the sign-in lock of NAME (set after 10 failed sign-ins in a minute; it lifts itself after 15 min)."""
    engine = get_engine()
    require_current(engine)
    with session_scope(engine) as session:
        unlock_user(session, username=name, actor="cli")
    console.print(f"user {name} unlocked")
