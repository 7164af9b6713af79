"""The import structure: no two project files import each other (directly or round a longer circle), core imports
neither domains nor apps, nothing imports apps, and the two domains never import each other.

Imports are read with ast (module level and inside functions), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("core", "domains", "apps")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for root in ROOTS for p in (REPO / root).rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found and found != mod:
                    graph[mod].add(found)
    return graph


GRAPH = _graph()


def test_the_graph_was_read() -> None:
    assert "core.serving.app" in GRAPH and "core.serving.routes" in GRAPH["core.serving.app"]


def test_no_import_circle() -> None:
    try:
        tuple(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def _layering_problems(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for a, targets in graph.items():
        for b in targets:
            top_a, top_b = a.split(".")[0], b.split(".")[0]
            if top_a == "core" and top_b in ("domains", "apps"):
                problems.append(f"{a} imports {b}: core must not import {top_b}")
            if top_a != "apps" and top_b == "apps":
                problems.append(f"{a} imports {b}: nothing imports apps")
            if top_a == top_b == "domains" and len(a.split(".")) > 2 and len(b.split(".")) > 2:
                if a.split(".")[1] != b.split(".")[1]:
                    problems.append(f"{a} imports {b}: the domains are siblings")
    return problems


def test_layers_point_one_way() -> None:
    assert _layering_problems(GRAPH) == []


def test_the_checks_can_fail() -> None:
    """The same checks on a small made-up graph with each kind of fault."""
    bad = {
        "core.x": {"domains.finance.y"},
        "domains.finance.y": {"domains.medical.z", "apps.main"},
        "domains.medical.z": set(),
        "apps.main": set(),
    }
    assert len(_layering_problems(bad)) == 3
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"core.a": {"core.b"}, "core.b": {"core.a"}}).static_order())
