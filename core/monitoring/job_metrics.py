"""Prometheus metrics of the background jobs, read from the jobs table at scrape time.

Any number of workers claim jobs from the same table, so the table (not one worker's memory) is where the numbers
agree: jobs by kind and state, seconds from start to finish of finished jobs, and the age of the oldest queued job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from core.db.engine import session_scope
from core.db.tables import JOB_STATES, Job
from core.review.queue import as_utc

# Seconds: 1 s, 10 s, 1 min, 5 min, 15 min, 1 h, 4 h, 1 day.
DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
FINISHED = ("succeeded", "failed", "cancelled")


class JobCollector(Collector):
    """Collects job metrics from the database on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("finmed_jobs", "Background jobs by kind and state.", labels=["kind", "state"])
        seconds = HistogramMetricFamily(
            "finmed_job_duration_seconds", "Seconds from start to finish of finished jobs, by kind.", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "finmed_job_oldest_queued_seconds", "Age of the oldest queued job, by kind (0 when none).", labels=["kind"]
        )
        now = datetime.now(UTC)
        with session_scope(self.engine) as session:
            counts = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
            queued = select(Job.kind, func.min(Job.created_at)).where(Job.status == "queued").group_by(Job.kind)
            first_queued = {kind: created for kind, created in session.execute(queued)}
            durations: dict[str, list[float]] = defaultdict(list)
            finished = session.execute(
                select(Job.kind, Job.started_at, Job.finished_at).where(Job.status.in_(FINISHED))
            )
            for kind, started, done in finished:
                if started is not None and done is not None:
                    durations[kind].append(max(0.0, (as_utc(done) - as_utc(started)).total_seconds()))
        by_kind: dict[str, dict[str, int]] = defaultdict(dict)
        for kind, state, n in counts:
            by_kind[kind][state] = n
        for kind, states in sorted(by_kind.items()):
            for state in JOB_STATES:
                jobs.add_metric([kind, state], states.get(state, 0))
            created = first_queued.get(kind)
            oldest.add_metric([kind], (now - as_utc(created)).total_seconds() if created is not None else 0.0)
        for kind, values in sorted(durations.items()):
            buckets = [(str(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
            buckets.append(("+Inf", len(values)))
            seconds.add_metric([kind], buckets, sum(values))
        yield jobs
        yield seconds
        yield oldest
