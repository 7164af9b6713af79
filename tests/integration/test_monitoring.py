"""The suite exporter: review queue, jobs, training runs and domain outcomes read at scrape time, behind the key.

Runs on SQLite and PostgreSQL; the metric catalog comes from the registries, and README documents every metric.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from core.auth.users import create_user
from core.db.base import utcnow
from core.db.engine import session_scope
from core.db.tables import Job
from core.errors import ValidationError
from core.monitoring.exporter import create_exporter_app, exported_sample_names, metric_catalog
from core.monitoring.scrape_key import KEY_NAME, sync_scrape_key
from core.monitoring.training_metrics import TrainingMetrics
from core.plugins import DomainPlugin
from core.review.policies import parse_policy
from core.review.queue import record_output, route_output
from core.serving.keys import lookup_key

REPO = Path(__file__).resolve().parents[2]
KEY = "k" * 40
POLICY = """
name: mon-default
version: 1
domain: mon
rules:
  - {name: all, queue: analyst, priority: 1, when: {field: level, op: ">=", value: 0}}
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def filled(migrated_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, Path]:
    """Three routed outputs, four jobs, one training run's textfile and a domain counting its outcomes."""
    from core import plugins

    counted = DomainPlugin(name="mon", extras={"outcome_counts": lambda session: {"risk_level": {"4": 3, "0": 1}}})
    monkeypatch.setattr(plugins, "load_plugins", lambda: (counted,))
    now = utcnow()
    with session_scope(migrated_engine) as session:
        admin = create_user(session, username="admin", role="admin", password="long-enough-pw")
        policy = parse_policy(POLICY)
        for level in (1, 2, 5):
            output = record_output(
                session,
                user=admin,
                domain="mon",
                input_text="x",
                prompt="p",
                raw_output="r",
                parsed={"level": level},
                model_name="m",
            )
            route_output(session, user=admin, output=output, policy=policy)
        session.add_all(
            [
                Job(kind="score", status="queued", created_at=now - timedelta(seconds=120)),
                Job(kind="score", status="queued", created_at=now - timedelta(seconds=30)),
                Job(kind="score", status="succeeded", started_at=now - timedelta(seconds=40), finished_at=now),
                Job(kind="train", status="failed", started_at=now - timedelta(seconds=5), finished_at=now),
            ]
        )
    data_dir = tmp_path / "var"
    metrics = TrainingMetrics((data_dir / "runs" / "r1").resolve(), run="r1")
    metrics.jsonl.parent.mkdir(parents=True)
    metrics.log({"step": 3, "tokens_per_s": 812.5, "peak_mem_mb": 300.0, "vanishing_ratio": 0.25})
    return migrated_engine, data_dir


def test_exporter_serves_every_collector_behind_the_key(filled: tuple[Engine, Path]) -> None:
    engine, data_dir = filled
    client = TestClient(create_exporter_app(engine, data_dir, scrape_key=KEY))
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    got = samples(response.text)
    assert got[("finmed_review_items", (("domain", "mon"), ("state", "pending")))] == 3
    assert got[("finmed_jobs", (("kind", "score"), ("state", "queued")))] == 2
    assert got[("finmed_jobs", (("kind", "train"), ("state", "failed")))] == 1
    assert got[("finmed_job_duration_seconds_count", (("kind", "score"),))] == 1
    assert got[("finmed_job_duration_seconds_bucket", (("kind", "score"), ("le", "60.0")))] == 1
    assert got[("finmed_job_duration_seconds_bucket", (("kind", "score"), ("le", "10.0")))] == 0
    assert 110 <= got[("finmed_job_oldest_queued_seconds", (("kind", "score"),))] < 600
    assert got[("finmed_train_tokens_per_second", (("run", "r1"),))] == 812.5
    assert got[("finmed_train_vanishing_ratio", (("run", "r1"),))] == 0.25
    assert got[("finmed_domain_outcomes", (("domain", "mon"), ("measure", "risk_level"), ("value", "4")))] == 3


def test_catalog_and_readme_document_every_metric(migrated_engine: Engine) -> None:
    catalog = metric_catalog(migrated_engine)
    names = {m.name for m in catalog}
    assert {"finmed:e2e_request_latency_seconds", "finmed_review_items", "finmed_jobs"} <= names
    assert {"finmed_train_tokens_per_second", "finmed_train_peak_memory_megabytes"} <= names
    assert "finmed:generation_tokens_total" in exported_sample_names(migrated_engine)
    assert all(m.help for m in catalog)
    readme = (REPO / "README.md").read_text()
    missing = sorted(m.name for m in catalog if f"`{m.name}`" not in readme)
    assert not missing, f"README's metric table lacks {missing}"


def test_scrape_key_sync(db_session) -> None:  # noqa: ANN001
    assert sync_scrape_key(db_session, key=KEY) == "created"
    assert sync_scrape_key(db_session, key=KEY) == "unchanged"
    row = lookup_key(db_session, key=KEY)
    assert row is not None and row.name == KEY_NAME
    assert sync_scrape_key(db_session, key="n" * 40) == "updated"
    assert lookup_key(db_session, key=KEY) is None and lookup_key(db_session, key="n" * 40) is not None
    for bad in (None, "short"):
        with pytest.raises(ValidationError, match="FINMED_SCRAPE_KEY"):
            sync_scrape_key(db_session, key=bad)
