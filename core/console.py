"""What every CLI face shares: the rich consoles (stdout, stderr), the acting-user option and date parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console

from core.errors import ValidationError

console = Console()
err_console = Console(stderr=True)

AS_USER = typer.Option(..., "--as", envvar="FINMED_USER", help="Act as this user (its role is checked).")


def parse_date(value: str, option: str) -> datetime:
    """`value` as an aware datetime (naive input is UTC); a ValidationError naming `option` otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{option} '{value}' is not a date: use YYYY-MM-DD or an ISO timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
