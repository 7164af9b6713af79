"""Model-version registry on SQLite and PostgreSQL: versions, roles, promotion through the accuracy gate, audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.auth.users import create_user
from core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from core.models.registry import check_accuracy_gate, get_version, list_versions, promote, register_version


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "export"
    path.mkdir()
    (path / "genai_config.json").write_text("{}")
    return path


def _register(session: Session, user, folder: Path, precision: str, drop: float | None):  # type: ignore[no-untyped-def]
    metrics = {} if drop is None else {"task_drop_pts": drop, "task_metric": 0.9}
    return register_version(
        session,
        user=user,
        name="risk",
        base_model="tiny",
        method="lora",
        precision=precision,
        path=folder,
        metrics=metrics,
    )


def test_versions_increment_and_latest_promoted_wins(db_session: Session, folder: Path) -> None:
    eng = create_user(db_session, username="eng", role="engineer", password="password123")
    v1 = _register(db_session, eng, folder, "fp32", None)
    v2 = _register(db_session, eng, folder, "int4", 0.5)
    v3 = _register(db_session, eng, folder, "int4", 3.0)
    assert [v1.version, v2.version, v3.version] == [1, 2, 3]
    assert get_version(db_session, user=eng, name="risk").version == 3  # nothing promoted: latest
    promote(db_session, user=eng, name="risk", version=2)
    assert get_version(db_session, user=eng, name="risk").version == 2
    promote(db_session, user=eng, name="risk", version=1)
    assert get_version(db_session, user=eng, name="risk", version=2).status == "retired"
    assert [v.version for v in list_versions(db_session, user=eng, name="risk")] == [3, 2, 1]
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions.count("model_version.registered") == 3 and actions.count("model_version.promoted") == 2


def test_accuracy_gate_refuses_large_drops(db_session: Session, folder: Path) -> None:
    eng = create_user(db_session, username="eng", role="engineer", password="password123")
    bad = _register(db_session, eng, folder, "int4", 3.0)
    unmeasured = _register(db_session, eng, folder, "gptq", None)
    gate = check_accuracy_gate(bad)
    assert not gate.ok and gate.drop_pts == 3.0 and "over the gate of 1.00" in gate.message
    assert check_accuracy_gate(bad, max_drop_pts=5.0).ok
    assert not check_accuracy_gate(unmeasured).ok
    with pytest.raises(ConflictError, match="loses 3.00 accuracy points"):
        promote(db_session, user=eng, name="risk", version=bad.version)
    assert promote(db_session, user=eng, name="risk", version=bad.version, force=True).status == "promoted"


def test_roles_and_bad_input(db_session: Session, folder: Path, tmp_path: Path) -> None:
    analyst = create_user(db_session, username="ana", role="analyst", password="password123")
    admin = create_user(db_session, username="root", role="admin", password="password123")
    with pytest.raises(PermissionDenied, match="role 'analyst'"):
        _register(db_session, analyst, folder, "int4", 0.1)
    with pytest.raises(ValidationError, match="no genai_config.json"):
        _register(db_session, admin, tmp_path, "int4", 0.1)
    with pytest.raises(ValidationError, match="unknown precision 'int3'"):
        _register(db_session, admin, folder, "int3", 0.1)
    with pytest.raises(NotFoundError, match="model 'risk'"):
        get_version(db_session, user=analyst, name="risk")
    version = _register(db_session, admin, folder, "int8", 0.2)
    assert get_version(db_session, user=analyst, name="risk").id == version.id  # reading is open to every role
    with pytest.raises(PermissionDenied):
        promote(db_session, user=analyst, name="risk", version=1)


def test_an_adapter_version_is_registered_on_its_base_version(db_session: Session, adapter_exports, tmp_path: Path):  # noqa: ANN001, ANN201
    """An adapter names its base version; it runs at the base's precision; it is served on that base."""
    import yaml

    from core.bootstrap import write_serve_config

    eng = create_user(db_session, username="eng", role="engineer", password="password123")
    e = adapter_exports
    base = register_version(db_session, user=eng, name="tiny-slots", base_model="tiny", method="base",
                            precision="fp32", path=e.base)  # fmt: skip
    plain = register_version(db_session, user=eng, name="tiny-plain", base_model="tiny", method="base",
                             precision="fp32", path=e.plain)  # fmt: skip
    with pytest.raises(ValidationError, match="is an adapter export: register it against the base version"):
        register_version(db_session, user=eng, name="a1", base_model="tiny", method="lora", precision="fp32",
                         path=e.adapters["a1"])  # fmt: skip
    with pytest.raises(ValidationError, match="has no adapter slots"):
        register_version(db_session, user=eng, name="a1", base_model="tiny", method="lora", precision="int4",
                         path=e.adapters["a1"], parent=plain)  # fmt: skip
    adapter = register_version(db_session, user=eng, name="a1", base_model="tiny", method="lora", precision="int4",
                               path=e.adapters["a1"], parent=base)  # fmt: skip
    assert adapter.parent_id == base.id and adapter.precision == "fp32", "an adapter runs at its base's precision"
    with pytest.raises(ValidationError, match="is itself an adapter"):
        register_version(db_session, user=eng, name="a2", base_model="tiny", method="lora", precision="fp32",
                         path=e.adapters["a2"], parent=adapter)  # fmt: skip
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.subject_id == "a1:1")).one()
    assert event.payload["parent"] == "tiny-slots:1"

    target, notes = write_serve_config(db_session, tmp_path / "serve.yaml")
    assert target is not None, notes
    models = {m["name"]: m for m in yaml.safe_load(target.read_text())["models"]}
    assert set(models) == {"tiny-slots", "tiny-plain"}, "an adapter is not a model of its own"
    assert models["tiny-slots"]["adapters"] == [{"name": "a1", "path": str(e.adapters["a1"].resolve())}]
