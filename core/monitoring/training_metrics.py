"""Per-step training metrics: one line per step in metrics.jsonl and Prometheus gauges in a textfile.

In a distributed run only rank 0 writes, a row whose figures already combine every rank (core/monitoring/
rank_metrics.py): tokens/s summed, peak memory the largest with each rank's beside it. No pushgateway: the gauges
live in a per-run `CollectorRegistry` written atomically to `<run>/metrics.prom` (the node-exporter textfile
format) after every step, where the monitoring stack scrapes or tails it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

PREFIX = "finmed_train_"


class TrainingMetrics:
    """Writes step metrics to `<folder>/metrics.jsonl` and `<folder>/metrics.prom`.

    Args:
        folder: the run folder being written.
        run: the run name (the `run` label of every gauge).
    """

    def __init__(self, folder: Path, run: str) -> None:
        self.jsonl = folder / "metrics.jsonl"
        self.prom = folder / "metrics.prom"
        self.registry = CollectorRegistry()
        labels = ["run"]

        def gauge(name: str, doc: str, extra: list[str] | None = None) -> Gauge:
            return Gauge(PREFIX + name, doc, labels + (extra or []), registry=self.registry)

        self.gauges = {
            "step": gauge("step", "Optimizer steps done."),
            "loss": gauge("loss", "Training loss of the last step (answer tokens)."),
            "lr": gauge("learning_rate", "Learning rate of the last step."),
            "tokens_per_s": gauge("tokens_per_second", "Non-padding tokens processed per second in the last step."),
            "peak_mem_mb": gauge("peak_memory_megabytes", "CUDA max allocated, or process peak RSS on CPU."),
            "grad_norm": gauge("grad_norm", "Total gradient norm before clipping."),
            "vanishing_ratio": gauge("vanishing_ratio", "Grad norm of the lowest / highest trainable layer."),
            "tiny_grad_share": gauge("tiny_grad_share", "Share of trainable tensors with grad norm below 1e-8."),
            "eval_loss": gauge("eval_loss", "Loss on the held-out split at the last evaluation."),
            "world_size": gauge("world_size", "Processes taking part in the run (1 without a strategy)."),
        }
        self.layer_gauge = gauge("layer_grad_norm", "Gradient norm per layer group.", ["layer"])
        self.rank_memory = gauge("rank_peak_memory_megabytes", "Peak memory of each rank.", ["rank"])
        self.run = run

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps after `step` (a resumed run rewrites them)."""
        if not self.jsonl.exists():
            return
        kept = [
            line for line in self.jsonl.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step
        ]
        self.jsonl.write_text("".join(line + "\n" for line in kept))

    def log(self, row: dict[str, Any]) -> None:
        """Append one step's row to metrics.jsonl and refresh the Prometheus textfile."""
        with self.jsonl.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        for key, gauge in self.gauges.items():
            value = row.get(key)
            if isinstance(value, int | float):
                gauge.labels(run=self.run).set(value)
        for layer, value in (row.get("layer_grad_norm") or {}).items():
            self.layer_gauge.labels(run=self.run, layer=layer).set(value)
        for rank, value in enumerate(row.get("peak_mem_mb_per_rank") or []):
            self.rank_memory.labels(run=self.run, rank=str(rank)).set(value)
        write_to_textfile(str(self.prom), self.registry)

    def rows(self) -> list[dict[str, Any]]:
        """Every row written so far."""
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line]
