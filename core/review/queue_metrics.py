"""Prometheus metrics of the review queue, read from the database at scrape time so every process agrees.

Register `ReviewCollector(engine)` on a prometheus_client registry (the monitoring exporter or the model
server's /metrics): backlog by state and domain, time from routing to decision (histogram), and override rate
(share of decisions that rejected or edited the model's output) by domain.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from core.db.engine import session_scope
from core.review.queue import as_utc
from core.review.states import FINAL_STATES
from core.review.tables import REVIEW_STATES, ReviewItem

# Seconds: 1 min, 5 min, 15 min, 1 h, 4 h, 1 day, 3 days, 1 week.
DECISION_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0, 259200.0, 604800.0)
OVERRIDES = ("rejected", "edited")


class ReviewCollector(Collector):
    """Collects review-queue metrics from the database on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "finmed_review_items", "Review items by state and domain.", labels=["state", "domain"]
        )
        seconds = HistogramMetricFamily(
            "finmed_review_time_to_decision_seconds",
            "Seconds from routing to the final decision, by domain.",
            labels=["domain"],
        )
        override = GaugeMetricFamily(
            "finmed_review_override_rate",
            "Share of final decisions that rejected or edited the output.",
            labels=["domain"],
        )
        with session_scope(self.engine) as session:
            counts = session.execute(
                select(ReviewItem.state, ReviewItem.domain, func.count()).group_by(ReviewItem.state, ReviewItem.domain)
            ).all()
            durations: dict[str, list[float]] = defaultdict(list)
            decided = session.execute(
                select(ReviewItem.domain, ReviewItem.created_at, ReviewItem.decided_at).where(
                    ReviewItem.state.in_(FINAL_STATES)
                )
            )
            for domain, created, done in decided:
                if done is None:
                    continue
                durations[domain].append((as_utc(done) - as_utc(created)).total_seconds())
        by_domain: dict[str, Counter[str]] = defaultdict(Counter)
        for state, domain, n in counts:
            by_domain[domain][state] = n
        for domain, states in sorted(by_domain.items()):
            for state in REVIEW_STATES:
                backlog.add_metric([state, domain], states.get(state, 0))
            final = sum(states[s] for s in FINAL_STATES)
            override.add_metric([domain], (sum(states[s] for s in OVERRIDES) / final) if final else 0.0)
        for domain, values in sorted(durations.items()):
            buckets = [(str(b), sum(1 for v in values if v <= b)) for b in DECISION_BUCKETS]
            buckets.append(("+Inf", len(values)))
            seconds.add_metric([domain], buckets, sum(values))
        yield backlog
        yield seconds
        yield override
