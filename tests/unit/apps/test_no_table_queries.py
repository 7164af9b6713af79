"""Acceptance: no page (apps/ and each domain's page.py) imports a table class (pages call services that check the
role); type-only imports and constants (ROLES) are fine."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from sqlalchemy.orm import DeclarativeBase

REPO = Path(__file__).resolve().parents[3]
APPS = REPO / "apps"
PAGES = [*sorted(APPS.rglob("*.py")), *sorted((REPO / "domains").glob("*/page.py"))]  # the app and the domain pages


def test_pages_import_no_table_class() -> None:
    offenders = []
    assert len(PAGES) > len(list(APPS.rglob("*.py")))  # the domain pages were found
    for path in PAGES:
        tree = ast.parse(path.read_text())
        type_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and id(node) not in type_only:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    value = getattr(module, alias.name, None)
                    if isinstance(value, type) and issubclass(value, DeclarativeBase):
                        offenders.append(f"{path.relative_to(REPO)} imports {node.module}.{alias.name}")
    assert offenders == []
