"""Prometheus metrics of what the domains produced (risk-level mix, draft states), through one plugin seam.

Core knows no domain table, so each domain that wants its outcomes on the dashboards contributes
`DomainPlugin.extras["outcome_counts"]`: a function `(session) -> {measure: {value: count}}` (finance:
`{"risk_level": {"0": 812, ..., "5": 9}}`; medical: `{"draft_state": {"drafted": 12, "signed": 3}}`). This
collector calls each at scrape time and exports one gauge, `finmed_domain_outcomes{domain, measure, value}`;
`finmed demo` prints the same counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db.engine import session_scope
from core.errors import ValidationError

SEAM = "outcome_counts"
log = logging.getLogger("finmed.monitoring")

OutcomeCounts = dict[str, dict[str, int]]


def _plugins() -> tuple[Any, ...]:
    from core import plugins  # looked up at call time, so a test can register a plugin double

    return plugins.load_plugins()


def outcome_counts(session: Session) -> dict[str, OutcomeCounts]:
    """Every domain's outcome counts, `{domain: {measure: {value: count}}}`, for domains that contribute them.

    Raises:
        ValidationError: a domain's function returned something other than {measure: {value: count}}.
    """
    found: dict[str, OutcomeCounts] = {}
    for plugin in _plugins():
        count: Callable[[Session], OutcomeCounts] | None = plugin.extras.get(SEAM)
        if count is None:
            continue
        raw = count(session)
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ValidationError(f"{plugin.name}: extras['{SEAM}'] must return {{measure: {{value: count}}}}")
        found[plugin.name] = {
            str(measure): {str(value): int(n) for value, n in values.items()} for measure, values in raw.items()
        }
    return found


class OutcomeCollector(Collector):
    """Collects `finmed_domain_outcomes` from the database on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "finmed_domain_outcomes",
            "What the domains produced, by domain, measure (risk_level, draft_state, ...) and value.",
            labels=["domain", "measure", "value"],
        )
        try:
            with session_scope(self.engine) as session:
                counts = outcome_counts(session)
        except Exception:  # one broken domain must not blank the whole scrape: the log names it
            log.exception("domain outcome counts failed; finmed_domain_outcomes is empty this scrape")
            counts = {}
        for domain, measures in sorted(counts.items()):
            for measure, values in sorted(measures.items()):
                for value, n in sorted(values.items()):
                    family.add_metric([domain, measure, value], n)
        yield family
