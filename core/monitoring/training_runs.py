"""Prometheus metrics of training runs, re-exported from the textfiles the runs write.

Every training step writes `<run>/metrics.prom` atomically (core/monitoring/training_metrics.py), wherever the run
happens: `finmed train`, a worker job, a domain's bootstrap. This collector reads those files under the data
folder at scrape time and exposes their samples as they are (each carries its `run` label), so the exporter shows
every run the shared data volume holds, with no push gateway and no state in the process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from core.monitoring.training_metrics import PREFIX

log = logging.getLogger("finmed.monitoring")

# Where run folders live under the data folder: core runs (`finmed train`) and each domain's own runs.
RUN_PATTERNS = ("runs/**/metrics.prom", "*/runs/**/metrics.prom")


def run_textfiles(data_dir: Path) -> list[Path]:
    """Every training textfile under `data_dir`, sorted, each once."""
    found: set[Path] = set()
    for pattern in RUN_PATTERNS:
        found.update(p for p in Path(data_dir).glob(pattern) if p.is_file())
    return sorted(found)


class TrainingRunsCollector(Collector):
    """Collects the `finmed_train_*` gauges of every run folder under `data_dir`.

    Args:
        data_dir: FINMED_DATA_DIR.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, GaugeMetricFamily] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        # Newest file first: two runs of the same name (a re-run elsewhere) show the newer one's values.
        for path in sorted(run_textfiles(self.data_dir), key=_mtime, reverse=True):
            try:
                families = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:  # a run folder being removed, or a foreign file: skip it, say so
                log.warning("skipping training metrics %s: %s", path, exc)
                continue
            for family in families:
                if not family.name.startswith(PREFIX) or family.type != "gauge":
                    continue
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = GaugeMetricFamily(family.name, family.documentation)
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        target.samples.append(sample)
        yield from merged.values()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
