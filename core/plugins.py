"""The seam through which domains plug into core: entry points in the group `finmed.plugins`.

Each entry point names a `DomainPlugin`. Core never imports a domain by name; it loads whatever the installed
distribution registers (pyproject.toml is the one place where domains are registered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from core.data.checks import DataChecks

GROUP = "finmed.plugins"


@dataclass(frozen=True)
class DomainPage:
    """A Streamlit page a domain contributes.

    Attributes:
        title: the navigation title.
        url_path: the page's URL path (unique across the app).
        roles: roles that may open it (admin always may).
        render: draws the page; called with the signed-in user (an object with `id`, `username`, `role`).
    """

    title: str
    url_path: str
    roles: tuple[str, ...]
    render: Callable[[Any], None]


@dataclass(frozen=True)
class BootstrapContext:
    """What `finmed up` / `finmed demo` hand each domain's bootstrap step.

    Attributes:
        engine: the migrated database (SQLAlchemy Engine).
        data_dir: FINMED_DATA_DIR; a domain keeps its default runs, exports and demo files under data_dir/<name>/.
        base_model: the base model to train on ("default", a folder, or a tiny model folder with `tiny`).
        tiny: the quick profile for tests (`finmed demo --tiny`): tiny model, a few steps, few demo rows.
        actor: username of the admin the domain acts as when it registers models and records outputs.
        progress: one line per step ("finance: training the default adapter (quick profile)").
    """

    engine: Any
    data_dir: Path
    base_model: str
    tiny: bool
    actor: str
    progress: Callable[[str], None]


@dataclass
class DomainPlugin:
    """What a domain contributes to the shared machinery.

    Attributes:
        name: the domain's name (`finance`, `medical`), also its CLI sub-command.
        cli: a typer app mounted as `finmed <name> ...`.
        api_routes: factory returning a FastAPI APIRouter mounted by the model server.
        review_policies: routing policy factories by name, used by the review queue.
        tables: modules that define the domain's tables (the migrations import them).
        pages: the domain's Streamlit pages; the app shows each to the roles it names.
        bootstrap: `finmed up` / `finmed demo` step: make the domain usable on a fresh install (train, export and
            register its default model versions if none is registered, index its corpora, load and process demo
            data, route outputs to review), skipping what is already done; returns summary counts for the demo.
        data: the domain's data-filter checks (tier 2 and 3), augmentable spans and substitution vocabulary
            (`finmed data filter|augment --domain <name>`).
        job_kinds: background job kinds by name (`finance.score`, ...), each a function or a core.jobs.kinds.JobKind
            that `finmed worker` runs with a core.jobs.context.JobContext and that returns the job's result dict.
        extras: further named seams (prompt builders, parsers) other core packages look up. `outcome_counts`:
            `(session) -> {measure: {value: count}}` of what the domain produced (finance `risk_level`, medical
            `draft_state`), exported as `finmed_domain_outcomes` (core/monitoring/outcome_metrics.py) and printed
            by `finmed demo`.
    """

    name: str
    cli: Any = None
    api_routes: Callable[..., Any] | None = None
    review_policies: dict[str, Callable[..., Any]] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    pages: tuple[DomainPage, ...] = ()
    bootstrap: Callable[[BootstrapContext], dict[str, Any]] | None = None
    data: DataChecks | None = None
    job_kinds: dict[str, Callable[..., Any]] = field(default_factory=dict)
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
