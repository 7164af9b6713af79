"""Data filter reports for the operations page: the report files `finmed data filter` wrote under a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.auth.roles import require_role
from core.db.tables import User
from core.finetune.runs import ENGINEER_ROLES, folders_with

REPORT_NAME = "report.json"  # `finmed data filter`'s default --report beside --out


def list_filter_reports(*, user: User, root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, report) for every data filter report.json under `root`; engineers and admins only.

    Files of that name that are not filter reports (no `tiers` list, e.g. a quantization report) are left out.
    """
    require_role(user, *ENGINEER_ROLES, action="read data filter reports")
    found = []
    for folder in folders_with(Path(root), REPORT_NAME):
        try:
            report = json.loads((folder / REPORT_NAME).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        tiers = report.get("tiers") if isinstance(report, dict) else None
        if isinstance(tiers, list) and all(isinstance(t, dict) for t in tiers):
            found.append((folder, report))
    return found


def tier_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tier: input, passed, dropped, flagged (the counts that must add up)."""
    return [{k: tier.get(k) for k in ("tier", "input", "passed", "dropped", "flagged")} for tier in report["tiers"]]


def reason_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (tier, drop or flag reason): count, description and the first example's line and detail."""
    rows = []
    for tier in report["tiers"]:
        for kind in ("reasons", "flags"):
            for code, entry in (tier.get(kind) or {}).items():
                first = (entry.get("examples") or [{}])[0]
                rows.append(
                    {
                        "tier": tier.get("tier"),
                        "kind": "dropped" if kind == "reasons" else "flagged",
                        "reason": code,
                        "count": entry.get("count"),
                        "description": entry.get("description", ""),
                        "example line": first.get("line"),
                        "example": first.get("detail", ""),
                    }
                )
    return rows
