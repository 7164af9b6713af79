"""Shared tables every part of the suite uses: users, model versions and background jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow

ROLES = ("analyst", "radiologist", "compliance", "engineer", "admin")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
MODEL_VERSION_STATES = ("registered", "promoted", "retired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(Base):
    """A person who signs in to the app or the API; the role decides what each service call allows."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]  # set after repeated failed sign-ins (core.auth.sign_in); admins unlock


class ModelVersion(Base):
    """A registered model (base + method + precision) that serving can load by `name` and `version`; or a LoRA
    adapter served on a registered base version (`parent_id`)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint(_in("status", MODEL_VERSION_STATES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    base_model: Mapped[str] = mapped_column(String(500))
    method: Mapped[str] = mapped_column(String(40))
    precision: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="registered")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A LoRA adapter version (path: an adapter export) is served on this base version (exported with slots).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))


class Job(Base):
    """A long-running piece of work (training, export, scoring, audit verification) with progress the app can show.

    core/jobs submits, claims and finishes these rows; `finmed worker` runs them. A running job whose worker stopped
    beating (`heartbeat_at`) is claimed again; `attempts` counts the claims.
    """

    __tablename__ = "jobs"
    __table_args__ = (CheckConstraint(_in("status", JOB_STATES), name="status"), Index(None, "status", "kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    error: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(100), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
