"""Exports for auditors and for training and the review-queue Prometheus metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.db.base import utcnow
from core.db.engine import session_scope
from core.errors import PermissionDenied, ValidationError
from core.review.exports import export_items, to_training
from core.review.queue import claim_next, decide
from core.review.queue_metrics import ReviewCollector

from .helpers import finance_item, make_users, medical_item

ROLES = ("system", "user", "assistant")


def load_training_records(path: Path) -> list[dict[str, Any]]:
    """The fine-tuning record contract: messages with known roles and string content, last one the target."""
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        record = json.loads(line)
        assert set(record) == {"messages", "meta"}, f"line {n}"
        messages = record["messages"]
        assert messages and all(set(m) == {"role", "content"} for m in messages), f"line {n}"
        assert all(m["role"] in ROLES and isinstance(m["content"], str) for m in messages), f"line {n}"
        assert messages[-1]["role"] == "assistant" and isinstance(record["meta"], dict), f"line {n}"
        records.append(record)
    return records


def _decided(session: Session, users: dict) -> dict[str, int]:
    """Three finance items decided approved / edited / rejected and one medical item edited; ids by decision."""
    ids = {}
    for decision in ("approved", "edited", "rejected"):
        item = finance_item(session, users["engineer"])
        claim_next(session, user=users["analyst"], domain="finance")
        edited = "risk_level: 1\nreasons: regular merchant" if decision == "edited" else None
        decide(session, user=users["analyst"], item_id=item.id, decision=decision, reason="ok", edited_text=edited)
        ids[decision] = item.id
    med = medical_item(session, users["engineer"])
    claim_next(session, user=users["radiologist"])
    decide(session, user=users["radiologist"], item_id=med.id, decision="edited", edited_text="Impression: benign.")
    ids["medical"] = med.id
    return ids


def test_to_training_round_trips_into_records(db_session: Session, tmp_path: Path) -> None:
    users = make_users(db_session)
    ids = _decided(db_session, users)
    out = tmp_path / "records.jsonl"
    assert to_training(db_session, user=users["engineer"], domain="finance", out=out) == 2
    records = load_training_records(out)
    by_id = {r["meta"]["review_item_id"]: r for r in records}
    assert set(by_id) == {ids["approved"], ids["edited"]}  # rejected items never become targets
    edited = by_id[ids["edited"]]["messages"]
    assert [m["role"] for m in edited] == ["system", "user", "assistant"]
    assert edited[-1]["content"] == "risk_level: 1\nreasons: regular merchant"
    assert by_id[ids["approved"]]["messages"][-1]["content"].startswith("risk_level: 4")
    assert "4111" not in out.read_text()  # masked input never reaches training data
    assert to_training(db_session, user=users["compliance"], domain="medical", out=out) == 1
    assert load_training_records(out)[0]["messages"][-1]["content"] == "Impression: benign."
    with pytest.raises(PermissionDenied, match="export review items for training: role 'analyst'"):
        to_training(db_session, user=users["analyst"], domain="finance", out=out)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_for_auditors(db_session: Session, tmp_path: Path, fmt: str) -> None:
    users = make_users(db_session)
    ids = _decided(db_session, users)
    out = tmp_path / "exports" / f"items.{fmt}"
    since = utcnow() - timedelta(days=1)
    assert export_items(db_session, user=users["compliance"], since=since, fmt=fmt, out=out) == 4
    if fmt == "csv":
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    edited = next(r for r in rows if int(r["item_id"]) == ids["edited"])
    assert edited["state"] == "edited" and edited["decided_by"] == "analyst" and "+risk_level: 1" in edited["diff"]
    assert export_items(db_session, user=users["admin"], since=utcnow() + timedelta(days=1), fmt=fmt, out=out) == 0
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "review.exported")).all()[-1]
    assert event.payload["rows"] == 0 and event.actor == "admin"
    with pytest.raises(ValidationError, match="unknown export format 'xml'"):
        export_items(db_session, user=users["compliance"], since=since, fmt="xml", out=out)
    with pytest.raises(PermissionDenied, match="export review items: role 'analyst'"):
        export_items(db_session, user=users["analyst"], since=since, fmt=fmt, out=out)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary files left behind


def test_metrics(migrated_engine: Engine) -> None:
    with session_scope(migrated_engine) as session:
        users = make_users(session)
        _decided(session, users)
        finance_item(session, users["engineer"])  # one pending
    registry = CollectorRegistry()
    registry.register(ReviewCollector(migrated_engine))
    text = generate_latest(registry).decode()
    assert 'finmed_review_items{domain="finance",state="pending"} 1.0' in text
    assert 'finmed_review_items{domain="finance",state="approved"} 1.0' in text
    assert 'finmed_review_override_rate{domain="finance"} 0.6666666666666666' in text
    assert 'finmed_review_override_rate{domain="medical"} 1.0' in text
    assert 'finmed_review_time_to_decision_seconds_count{domain="finance"} 3.0' in text
    assert 'finmed_review_time_to_decision_seconds_bucket{domain="finance",le="60.0"} 3.0' in text


def test_since_dates_compare_on_both_databases(db_session: Session, tmp_path: Path) -> None:
    users = make_users(db_session)
    _decided(db_session, users)
    naive_midnight = datetime.combine(utcnow().date(), datetime.min.time()).astimezone()
    out = tmp_path / "x.jsonl"
    assert (
        export_items(
            db_session, user=users["compliance"], since=naive_midnight - timedelta(days=1), fmt="jsonl", out=out
        )
        == 4
    )
