"""Quantization reports for the operations page: the report.json files `finmed quant-report` wrote under a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.auth.roles import require_role
from core.db.tables import User
from core.finetune.runs import ENGINEER_ROLES, folders_with


def list_reports(*, user: User, root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, report) for every quant-report report.json under `root`; engineers and admins only.

    Files that are not reports (no `precisions` table) are left out.
    """
    require_role(user, *ENGINEER_ROLES, action="read quantization reports")
    found = []
    for folder in folders_with(Path(root), "report.json"):
        try:
            report = json.loads((folder / "report.json").read_text())
        except json.JSONDecodeError:
            continue
        if isinstance(report, dict) and isinstance(report.get("precisions"), dict):
            found.append((folder, report))
    return found


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per precision of a report (label first), for a table or a chart."""
    return [
        {"precision": label, **{k: v for k, v in row.items() if k not in ("options", "path")}}
        for label, row in report["precisions"].items()
    ]
