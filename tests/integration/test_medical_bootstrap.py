"""DomainPlugin.bootstrap of medical on the quick profile: trains, measures and registers, indexes, drafts and
routes once, then skips what is done."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from core.db.engine import get_engine, session_scope
from core.db.migrate import upgrade
from core.db.tables import ModelVersion, User
from core.models.registry import check_accuracy_gate
from core.plugins import BootstrapContext, load_plugins
from core.settings import get_settings
from domains.medical.tables import MedicalDraft


def test_bootstrap_quick_profile_then_skips(tiny_model_dir: Path) -> None:
    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        session.add(User(username="root", role="admin", password_hash="-"))
    plugin = next(p for p in load_plugins() if p.name == "medical")
    assert plugin.bootstrap is not None and "domains.medical.tables" in plugin.tables
    assert [p.url_path for p in plugin.pages] == ["medical"]
    lines: list[str] = []
    ctx = BootstrapContext(engine, get_settings().data_dir, str(tiny_model_dir), True, "root", lines.append)
    first = plugin.bootstrap(ctx)
    assert first["drafts"] == 4 and first["queued"] == 4 and first["indexed"] > 0
    assert sorted(first["model_versions"]) == ["medical-st-marys:1", "medical-stage1:1"]
    again = plugin.bootstrap(ctx)
    assert again["drafts"] == 0 and sorted(again["model_versions"]) == sorted(first["model_versions"])
    assert any("stage 1" in line for line in lines)
    lines_text = "\n".join(lines)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(MedicalDraft)) == 4
        # Both exports were measured against fp32 and pass the accuracy gate, so the model server will load them.
        versions = list(session.scalars(select(ModelVersion)))
        assert len(versions) == 2 and all(check_accuracy_gate(v).ok for v in versions)
        assert all(v.metrics["task_drop_pts"] is not None and v.metrics["export_note"] in lines_text for v in versions)
