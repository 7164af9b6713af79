"""The seam through which domains plug into core: entry points in the group `finmed.plugins`.

Each entry point names a `DomainPlugin`. Core never imports a domain by name; it loads whatever the installed
distribution registers (pyproject.toml is the one place where domains are registered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

GROUP = "finmed.plugins"


@dataclass
class DomainPlugin:
    """What a domain contributes to the shared machinery.

    Attributes:
        name: the domain's name (`finance`, `medical`), also its CLI sub-command.
        cli: a typer app mounted as `finmed <name> ...`.
        api_routes: factory returning a FastAPI APIRouter mounted by the model server.
        review_policies: routing policy factories by name, used by the review queue.
        extras: further named seams (prompt builders, parsers) other core rooms look up.
    """

    name: str
    cli: Any = None
    api_routes: Callable[..., Any] | None = None
    review_policies: dict[str, Callable[..., Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def load_plugins() -> tuple[DomainPlugin, ...]:
    """Every registered domain plugin, in name order."""
    found = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        plugin = ep.load()
        if not isinstance(plugin, DomainPlugin):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a DomainPlugin")
        found.append(plugin)
    return tuple(found)
