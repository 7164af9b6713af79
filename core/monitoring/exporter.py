"""The one metrics module of the suite: which registry each scraped endpoint serves, and the catalog of them all.

Two endpoints carry every metric:

* the model server's `/metrics` (each replica): `core.serving.serving_metrics.ServingMetrics` — latency, queue,
  batch size, tokens. It is per process, so Prometheus scrapes every replica and sums.
* the suite exporter's `/metrics` (`finmed metrics serve`, one per deployment): `suite_registry` — review queue
  (core/review/queue_metrics.py), jobs (core/monitoring/job_metrics.py), training runs
  (core/monitoring/training_runs.py re-exporting each run's core/monitoring/training_metrics.py textfile) and
  domain outcomes (core/monitoring/outcome_metrics.py). All of it is read from the database and the data folder at
  scrape time, so any number of workers and servers agree and one exporter is enough.

`metric_catalog` lists every metric both endpoints can export (name, type, help, endpoint) from the registries
themselves: README's metric table, the Grafana cross-check test and `finmed metrics list` read it.
"""

from __future__ import annotations

import hmac
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine

from core.monitoring.job_metrics import JobCollector
from core.monitoring.outcome_metrics import OutcomeCollector
from core.monitoring.training_metrics import TrainingMetrics
from core.monitoring.training_runs import TrainingRunsCollector
from core.review.queue_metrics import ReviewCollector
from core.serving.serving_metrics import ServingMetrics

SERVER = "server"
EXPORTER = "exporter"
# Sample names a family of each type puts on the wire (prometheus_client's exposition).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count", "_created"),
}


@dataclass(frozen=True)
class MetricInfo:
    """One exported metric family: its name, Prometheus type, help text and the endpoint that serves it."""

    name: str
    type: str
    help: str
    endpoint: str

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The series names a PromQL query can use for this family (`x_total`, `x_bucket`, ...)."""
        return tuple(self.name + suffix for suffix in _SUFFIXES.get(self.type, ("",)))


def suite_registry(engine: Engine, data_dir: Path) -> CollectorRegistry:
    """The exporter's registry: review queue, jobs, training runs and domain outcomes, read at scrape time."""
    registry = CollectorRegistry()
    registry.register(ReviewCollector(engine))
    registry.register(JobCollector(engine))
    registry.register(TrainingRunsCollector(data_dir))
    registry.register(OutcomeCollector(engine))
    return registry


def _families(registry: CollectorRegistry, endpoint: str) -> list[MetricInfo]:
    return [MetricInfo(m.name, m.type, m.documentation, endpoint) for m in registry.collect()]


def metric_catalog(engine: Engine) -> list[MetricInfo]:
    """Every metric family the suite exports, from the registries themselves, sorted by name.

    Args:
        engine: a migrated database (the exporter's collectors query it to list their families).
    """
    found = _families(ServingMetrics().registry, SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        # A run's gauges, as the exporter re-exports them (it has no files to read in an empty folder).
        found += _families(TrainingMetrics(Path(tmp), run="catalog").registry, EXPORTER)
        found += [m for m in _families(suite_registry(engine, Path(tmp)), EXPORTER)]
    unique = {m.name: m for m in found}
    return sorted(unique.values(), key=lambda m: m.name)


def exported_sample_names(engine: Engine) -> set[str]:
    """Every series name a dashboard query may use (family names plus their type's suffixes)."""
    return {name for info in metric_catalog(engine) for name in info.sample_names}


def check_scrape_key(header: str, expected: str | None) -> bool:
    """True when `expected` is unset or the `Authorization` header is `Bearer <expected>` (constant-time)."""
    if not expected:
        return True
    scheme, _, key = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), expected.encode())


def create_exporter_app(engine: Engine, data_dir: Path, *, scrape_key: str | None) -> FastAPI:
    """The exporter's FastAPI app: `/healthz` (open) and `/metrics` (Bearer scrape key when one is set).

    FastAPI rather than prometheus_client's start_http_server because the scrape key needs a check on every
    request, and the model server already runs FastAPI under uvicorn the same way.
    """
    registry = suite_registry(engine, data_dir)
    app = FastAPI(title="finmed metrics exporter", version="1")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        if not check_scrape_key(request.headers.get("authorization", ""), scrape_key):
            body = {"error": {"message": "missing or wrong scrape key: send `Authorization: Bearer <key>`"}}
            return JSONResponse(body, status_code=401)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
