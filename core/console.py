"""The CLI's shared rich console (stdout) and error console (stderr)."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
