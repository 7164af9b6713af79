"""What every benchmark records beside its figures: the machine, the load it ran under, and paths that mean
something on another machine.

Figures measured while other jobs share the cores come out several times wrong (seen here: 2-5x with a load
average of 7-14), so each benchmark calls `require_quiet` before it starts and prints `machine_line` in its results.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUIET_LOAD = 1.0


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def machine_line() -> str:
    """One line: date, CPU, cores, Python and torch versions, and the load average at this moment."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "none"
    one, five, fifteen = load_average()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch_version}, load average {one:.2f} {five:.2f} {fifteen:.2f}"
    )


def require_quiet(*, allow_busy: bool, max_load: float = QUIET_LOAD) -> str:
    """Refuse to start on busy cores (1-minute load average at or above `max_load`) unless `allow_busy`.

    Returns the machine line to record; with `allow_busy` on busy cores it says so in the line.
    """
    line = machine_line()
    one = load_average()[0]
    if one >= max_load:
        if not allow_busy:
            sys.exit(
                f"load average {one:.2f} >= {max_load}: other jobs share the cores, figures would be wrong. "
                "Wait until it drops, or pass --allow-busy (the results then say so)."
            )
        line += " (BUSY: started with --allow-busy; absolute figures are not trustworthy)"
    return line


def portable(value: Any) -> Any:
    """`value` with absolute paths made relative to the repository (or reduced to `<elsewhere>/NAME`), recursively,
    so a result file names no folder of the machine it ran on."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith("/")):
        path = Path(value)
        if not path.is_absolute():
            return str(path)
        try:
            return str(path.resolve().relative_to(REPO))
        except ValueError:
            return f"<elsewhere>/{path.name}"
    return value
