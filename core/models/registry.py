"""Model-version registry: exported models with their precision and measured report, promotion, and the
accuracy gate serving checks before it loads a version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import require_role
from core.db.tables import ROLES, ModelVersion, User
from core.errors import ConflictError, NotFoundError, ValidationError
from core.serving.adapter_files import ADAPTER_FILE

DEFAULT_MAX_DROP_PTS = 1.0
WRITERS = ("engineer", "admin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
KNOWN_PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4", "gptq")


@dataclass(frozen=True)
class GateResult:
    """Whether a version passes the accuracy gate: its measured drop against fp32, in percentage points."""

    ok: bool
    drop_pts: float | None
    max_drop_pts: float
    message: str

    def raise_if_failed(self) -> None:
        """Raise ConflictError with the gate's message when the version must not be served."""
        if not self.ok:
            raise ConflictError(self.message)


def metrics_from_report(report_path: Path, label: str) -> dict[str, Any]:
    """The figures of one precision `label` from a quant-report report.json, plus where the report lives.

    Raises:
        NotFoundError: the file is missing.
        ValidationError: not a report, or it has no row for `label`.
    """
    report_path = Path(report_path)
    if not report_path.is_file():
        raise NotFoundError(f"report {report_path} does not exist")
    try:
        rows = json.loads(report_path.read_text())["precisions"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValidationError(f"{report_path} is not a quant-report report.json (no 'precisions')") from None
    if label not in rows:
        raise ValidationError(f"{report_path} has no row for precision '{label}': it has {', '.join(rows)}")
    row = {k: v for k, v in rows[label].items() if k not in ("options", "path")}
    return {**row, "report": str(report_path), "report_label": label}


def register_version(
    session: Session,
    *,
    user: User | None,
    name: str,
    base_model: str,
    method: str,
    precision: str,
    path: str | Path,
    metrics: dict[str, Any] | None = None,
    parent: ModelVersion | None = None,
) -> ModelVersion:
    """Register the next version of `name` (1, 2, ...) pointing at an exported model folder, or at an adapter export
    served on the base version `parent` (it takes the base's precision).

    Args:
        metrics: measured figures, e.g. a quant-report row (task_metric, task_drop_pts, size_mb, ...).
        parent: for an adapter export (`finmed export --as-adapter`): the registered base version it runs on.

    Raises:
        PermissionDenied: the user is not an engineer or admin.
        ValidationError: bad name or precision; `path` is not an exported model folder; an adapter without its
            base version, or one that does not fit that base (the message names why).
    """
    require_role(user, *WRITERS, action="register a model version")
    assert user is not None
    if not NAME_RE.match(name):
        raise ValidationError(f"invalid model name '{name}': letters, digits, _ . - (up to 100)")
    folder = Path(path)
    is_adapter = (folder / ADAPTER_FILE).is_file()
    if is_adapter and parent is None:
        raise ValidationError(
            f"{folder} is an adapter export: register it against the base version it runs on (--base-version NAME:V)"
        )
    if parent is not None:
        _check_adapter_on(folder, parent)
        precision = parent.precision
    if precision not in KNOWN_PRECISIONS:
        raise ValidationError(f"unknown precision '{precision}' for {name}: one of {', '.join(KNOWN_PRECISIONS)}")
    if not is_adapter and not (folder / "genai_config.json").is_file():
        raise ValidationError(f"{folder} is not an exported model folder (no genai_config.json): run `finmed export`")
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) or 0
    version = ModelVersion(
        name=name,
        version=latest + 1,
        base_model=base_model,
        method=method,
        precision=precision,
        path=str(folder.resolve()),
        status="registered",
        metrics=dict(metrics or {}),
        created_by=user.id,
        parent_id=parent.id if parent is not None else None,
    )
    session.add(version)
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="model_version.registered",
        subject_type="model_version",
        subject_id=f"{name}:{version.version}",
        payload={
            "precision": precision,
            "method": method,
            "path": version.path,
            "task_drop_pts": version.metrics.get("task_drop_pts"),
            "parent": f"{parent.name}:{parent.version}" if parent is not None else None,
        },
    )
    return version


def _check_adapter_on(folder: Path, parent: ModelVersion) -> None:
    """ValidationError unless `folder` is an adapter export that fits the slots of base version `parent`."""
    from core.serving.adapter_files import adapter_tensors, check_fits, read_adapter, read_slots

    if parent.parent_id is not None:
        raise ValidationError(f"{parent.name} v{parent.version} is itself an adapter; name the base version it runs on")
    meta = read_adapter(folder)
    slots, fingerprint = read_slots(Path(parent.path))
    if meta.get("fingerprint") != fingerprint:
        raise ValidationError(
            f"adapter {folder} was exported for base model {meta.get('base_model')!r}, not the model "
            f"{parent.name} v{parent.version} was exported from"
        )
    base = f"{parent.name} v{parent.version}"
    check_fits(slots, adapter_tensors(folder / ADAPTER_FILE), adapter=folder.name, base=base)


def list_versions(session: Session, *, user: User | None, name: str | None = None) -> list[ModelVersion]:
    """All versions (of `name`, if given), newest first. Any signed-in role may read the registry."""
    require_role(user, *ROLES, action="list model versions")
    query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
    if name is not None:
        query = query.where(ModelVersion.name == name)
    return list(session.scalars(query))


def get_version(session: Session, *, user: User | None, name: str, version: int | None = None) -> ModelVersion:
    """Version `version` of `name`; without a number, the latest promoted one, else the latest not retired.

    Raises:
        NotFoundError: naming the model and version.
    """
    require_role(user, *ROLES, action="read a model version")
    query = select(ModelVersion).where(ModelVersion.name == name)
    if version is not None:
        found = session.scalar(query.where(ModelVersion.version == version))
    else:
        newest = query.order_by(ModelVersion.version.desc()).limit(1)
        found = session.scalar(newest.where(ModelVersion.status == "promoted")) or session.scalar(
            newest.where(ModelVersion.status != "retired")
        )
    if found is None:
        which = f"version {version} of " if version is not None else "a usable version of "
        raise NotFoundError(f"no {which}model '{name}': see `finmed model versions {name}`")
    return found


def check_accuracy_gate(version: ModelVersion, max_drop_pts: float = DEFAULT_MAX_DROP_PTS) -> GateResult:
    """Does the version's measured task-accuracy drop against fp32 stay within `max_drop_pts` points?

    An fp32 version passes without a report (it is the reference); any other precision needs a measured drop.
    """
    who = f"model {version.name} v{version.version} ({version.precision})"
    drop = version.metrics.get("task_drop_pts") if version.metrics else None
    if drop is None:
        if version.precision == "fp32":
            return GateResult(True, 0.0, max_drop_pts, f"{who} is the fp32 reference")
        return GateResult(
            False,
            None,
            max_drop_pts,
            f"{who} has no measured accuracy drop: register it with a quant-report (--report)",
        )
    drop = float(drop)
    if drop > max_drop_pts:
        return GateResult(
            False,
            drop,
            max_drop_pts,
            f"{who} loses {drop:.2f} accuracy points vs fp32, over the gate of {max_drop_pts:.2f}",
        )
    return GateResult(True, drop, max_drop_pts, f"{who} loses {drop:.2f} points (gate {max_drop_pts:.2f})")


def promote(
    session: Session,
    *,
    user: User | None,
    name: str,
    version: int,
    max_drop_pts: float = DEFAULT_MAX_DROP_PTS,
    force: bool = False,
) -> ModelVersion:
    """Make `version` the one serving uses for `name`; the previously promoted version is retired.

    Raises:
        PermissionDenied: the user is not an engineer or admin.
        NotFoundError: no such version.
        ConflictError: the version is retired, or fails the accuracy gate (unless `force`).
    """
    require_role(user, *WRITERS, action="promote a model version")
    assert user is not None
    target = get_version(session, user=user, name=name, version=version)
    if target.status == "retired":
        raise ConflictError(f"model {name} v{version} is retired: register it again to serve it")
    gate = check_accuracy_gate(target, max_drop_pts)
    if not force:
        gate.raise_if_failed()
    for current in session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.status == "promoted")
    ):
        if current.id != target.id:
            current.status = "retired"
    target.status = "promoted"
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="model_version.promoted",
        subject_type="model_version",
        subject_id=f"{name}:{version}",
        payload={"gate_ok": gate.ok, "drop_pts": gate.drop_pts, "forced": force},
    )
    return target
