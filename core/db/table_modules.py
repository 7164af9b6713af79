"""Every module that defines tables, imported so Alembic (env.py, autogenerate) and the drift check see the schema.

The database layer names no table module itself: core packages register theirs in pyproject.toml (entry-point
group `finmed.tables`), and each domain plugin lists its own in `DomainPlugin.tables`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from core.plugins import load_plugins

GROUP = "finmed.tables"


def table_module_names() -> list[str]:
    """Module names, core's (entry-point order by name) then each plugin's, without repeats."""
    names = [ep.value for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)]
    for plugin in load_plugins():
        names.extend(plugin.tables)
    return list(dict.fromkeys(names))


def import_table_modules() -> list[str]:
    """Import every registered table module (registering its tables on Base.metadata); returns their names."""
    names = table_module_names()
    for name in names:
        importlib.import_module(name)
    return names
