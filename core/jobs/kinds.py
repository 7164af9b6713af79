"""The registry of job kinds: core packages register theirs as `finmed.job_kinds` entry points (pyproject.toml),
domains through `DomainPlugin.job_kinds`; tests and embedding code may add more with `register_kind`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from core.errors import ValidationError
from core.plugins import load_plugins

GROUP = "finmed.job_kinds"
_added: dict[str, JobKind] = {}


@dataclass(frozen=True)
class JobKind:
    """A kind of background job.

    Attributes:
        run: the job function; takes a core.jobs.context.JobContext, returns a JSON-serialisable result dict.
        roles: roles that may submit it (admin always may); empty means every signed-in role.
        title: a short human name for tables ("Audit chain verification").
        shared: every user who may submit the kind sees its jobs (e.g. the last chain verification), not only
            the one who submitted it.
    """

    run: Callable[..., dict[str, Any]]
    roles: tuple[str, ...] = ()
    title: str = ""
    shared: bool = False

    def __call__(self, ctx: Any) -> dict[str, Any]:
        return self.run(ctx)


def _as_kind(name: str, value: Any) -> JobKind:
    if isinstance(value, JobKind):
        return value
    if callable(value):
        return JobKind(run=value, title=name)
    raise TypeError(f"job kind {name} is neither a JobKind nor a function: {value!r}")


@lru_cache(maxsize=1)
def _registered() -> dict[str, JobKind]:
    found: dict[str, JobKind] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        found[ep.name] = _as_kind(ep.name, ep.load())
    for plugin in load_plugins():
        for name, value in plugin.job_kinds.items():
            if name in found:
                raise TypeError(f"job kind {name} of plugin {plugin.name} is registered twice")
            found[name] = _as_kind(name, value)
    return found


def all_kinds() -> dict[str, JobKind]:
    """Every job kind by name (entry points, plugins, then `register_kind` additions)."""
    return {**_registered(), **_added}


def register_kind(name: str, kind: JobKind | Callable[..., dict[str, Any]]) -> None:
    """Add a kind in this process (the worker that runs it must have registered it too)."""
    _added[name] = _as_kind(name, kind)


def get_kind(name: str) -> JobKind:
    """The kind called `name`.

    Raises:
        ValidationError: no such kind, naming the known ones.
    """
    kinds = all_kinds()
    if name not in kinds:
        raise ValidationError(f"unknown job kind '{name}': known kinds are {', '.join(sorted(kinds)) or 'none'}")
    return kinds[name]
