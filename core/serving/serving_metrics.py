"""Prometheus metrics of the model server, named after vLLM's (`vllm:num_requests_running`, ...) with `finmed:`.

Each app gets its own registry, so several servers (tests, benchmark) can live in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServingMetrics:
    """Every metric the server exports; label `model_name` is the version name clients send."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests_running = Gauge(
            "finmed:num_requests_running", "Requests in a batch being generated.", ["model_name"], registry=r
        )
        self.requests_waiting = Gauge(
            "finmed:num_requests_waiting", "Requests queued for the next batch.", ["model_name"], registry=r
        )
        self.batch_size = Histogram(
            "finmed:batch_size", "Requests per generated batch.", ["model_name"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_time = Histogram(
            "finmed:request_queue_time_seconds",
            "Time from arrival to the start of its batch.",
            ["model_name"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "finmed:time_to_first_token_seconds",
            "Time from arrival to the first generated token.",
            ["model_name"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token = Histogram(
            "finmed:inter_token_latency_seconds",
            "Time between consecutive generated tokens.",
            ["model_name"],
            buckets=_TOKEN_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "finmed:e2e_request_latency_seconds",
            "Time from arrival to the last token, successful requests.",
            ["model_name"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("finmed:prompt_tokens", "Prompt tokens processed.", ["model_name"], registry=r)
        self.cached_prompt_tokens = Counter(
            "finmed:cached_prompt_tokens", "Prompt tokens served from a cached prefix.", ["model_name"], registry=r
        )
        self.generation_tokens = Counter("finmed:generation_tokens", "Tokens generated.", ["model_name"], registry=r)
        self.requests = Counter(
            "finmed:request_success",
            "Finished requests by finish reason.",
            ["model_name", "finished_reason"],
            registry=r,
        )
        self.errors = Counter(
            "finmed:request_errors", "Requests answered with an error, by kind.", ["kind"], registry=r
        )
        self.model_load_seconds = Gauge(
            "finmed:model_load_seconds", "Seconds it took to load the model.", ["model_name", "device"], registry=r
        )
        self.model_memory_bytes = Gauge(
            "finmed:model_memory_bytes", "Resident memory the model added when loaded.", ["model_name"], registry=r
        )
