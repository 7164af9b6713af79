"""The finance bootstrap of `finmed up` / `finmed demo` on the quick profile: numeric screen, the finance adapter
trained, exported at int8 beside fp32, measured and registered (int8 unless it fails the gate), cases indexed, demo
rows scored and routed; a second run skips it all."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import ModelVersion, User
from core.models.registry import check_accuracy_gate
from core.plugins import BootstrapContext, load_plugins
from core.settings import get_settings
from domains.finance.tables import Assessment


def test_bootstrap_quick_profile_then_skips(tiny_model_dir: Path) -> None:
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        session.add(User(username="root", role="admin", password_hash="-"))
    plugin = next(p for p in load_plugins() if p.name == "finance")
    lines: list[str] = []
    ctx = BootstrapContext(engine, get_settings().data_dir, str(tiny_model_dir), True, "root", lines.append)
    first = plugin.bootstrap(ctx)
    assert first["model_versions"]["llm"] == "finance-lora:v1"
    assert first["model_versions"]["calibration"].startswith("cal-") and first["cases"] > 0
    assert sum(first["levels"].values()) > 0 and first["queued"] >= 1 and not first["skipped"]
    assert any("int8" in line for line in lines)
    with session_scope(engine) as session:
        version = session.scalar(select(ModelVersion).where(ModelVersion.name == "finance-lora"))
        assert version is not None and version.precision in ("int8", "fp32")
        assert (Path(version.path) / "genai_config.json").is_file()
        assert version.metrics["task_drop_pts"] is not None and check_accuracy_gate(version).ok
        assert Path(version.metrics["report"]).is_file() and any(version.metrics["export_note"] in x for x in lines)
        n = session.scalar(select(func.count()).select_from(Assessment))
    second = plugin.bootstrap(ctx)
    assert second["levels"] == first["levels"] and len(second["skipped"]) == 4
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Assessment)) == n
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
