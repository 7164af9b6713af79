"""The dynamic batcher on the tiny exported model: batch closing, mixed batch keys, queue bound, timeouts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.serving.batcher import ModelWorker, QueueFull, RequestTimeout
from core.serving.config import ModelSpec
from core.serving.engine import LoadedModel
from core.serving.gen_request import Constraint, GenRequest
from core.serving.serving_metrics import ServingMetrics


@pytest.fixture(scope="module")
def tiny_loaded(tiny_genai_dir: Path) -> LoadedModel:
    return LoadedModel("tiny", tiny_genai_dir, device="cpu")


@pytest.fixture(scope="module")
def slow_loaded(slow_genai_dir: Path) -> LoadedModel:
    """Slow enough that a 400-token request outlives a 30 ms timeout on an idle machine."""
    return LoadedModel("slow", slow_genai_dir, device="cpu")


def _req(model: LoadedModel, text: str, **kw: object) -> GenRequest:
    return GenRequest(prompt_ids=model.encode(text), **{"max_new_tokens": 6, **kw})  # type: ignore[arg-type]


def test_mixed_keys_and_lengths_are_batched_apart_and_match_alone(tiny_loaded: LoadedModel) -> None:
    metrics = ServingMetrics()
    worker = ModelWorker(tiny_loaded, ModelSpec(name="tiny", max_batch_size=8, max_wait_ms=200), metrics)
    texts = ["short", "a much longer prompt about a transaction", "mid length prompt", "x"]

    async def run() -> list[GenRequest]:
        choice = Constraint("choice", ("low", "high"))
        reqs = [
            _req(tiny_loaded, t, min_new_tokens=(6 if i % 2 else 0), constraint=(choice if i == 3 else None))
            for i, t in enumerate(texts)
        ]
        return list(await asyncio.gather(*(worker.run(r, 30) for r in reqs)))

    try:
        together = asyncio.run(run())
        sizes = metrics.batch_size.labels("tiny")._sum.get()  # type: ignore[attr-defined]
        assert sizes == 4  # every request ran, in at most three batches (three batch keys)
        for i, (text, got) in enumerate(zip(texts, together, strict=True)):
            alone = _req(tiny_loaded, text, min_new_tokens=got.min_new_tokens, constraint=got.constraint)
            tiny_loaded.generate([alone])
            assert alone.token_ids == got.token_ids, i
        assert together[3].text in ("low", "high")
        assert len(together[1].token_ids) == 6
    finally:
        worker.close()


def test_constrained_requests_run_alone_and_all_finish(tiny_loaded: LoadedModel) -> None:
    """Constrained rows never share a static batch (onnxruntime-genai 0.18 fails a batch whose grammars stop apart)."""
    metrics = ServingMetrics()
    worker = ModelWorker(tiny_loaded, ModelSpec(name="tiny", max_batch_size=8, max_wait_ms=200), metrics)
    choice = Constraint("choice", ("low", "medium risk", "high risk: escalate now"))

    async def run() -> list[GenRequest]:
        reqs = [_req(tiny_loaded, t, max_new_tokens=16, constraint=choice) for t in ("a", "bb", "ccc d", "e f g h")]
        return list(await asyncio.gather(*(worker.run(r, 30) for r in reqs)))

    try:
        got = asyncio.run(run())
        assert all(r.text in choice.value for r in got), [r.text for r in got]
        sample = metrics.registry.get_sample_value
        assert sample("finmed:batch_size_count", {"model_name": "tiny"}) == 4  # four batches ...
        assert sample("finmed:batch_size_sum", {"model_name": "tiny"}) == 4  # ... of one request each
    finally:
        worker.close()


def test_queue_bound_and_timeout(slow_loaded: LoadedModel) -> None:
    metrics = ServingMetrics()
    worker = ModelWorker(slow_loaded, ModelSpec(name="tiny", max_batch_size=1, max_wait_ms=0, max_queue=1), metrics)

    async def run() -> None:
        long = [_req(slow_loaded, "Impression:", max_new_tokens=400, min_new_tokens=400) for _ in range(3)]
        first = asyncio.ensure_future(worker.run(long[0], 0.03))
        while not metrics.requests_running.labels("tiny")._value.get():  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(worker.run(long[1], 0.03))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as full:
            worker.submit(long[2])
        assert full.value.retry_after >= 1
        for task in (first, second):
            with pytest.raises(RequestTimeout):
                await task
        assert long[0].cancelled.is_set() and len(long[0].token_ids) < 400
        done = await worker.run(_req(slow_loaded, "ok"), 30)
        assert done.finish_reason in ("stop", "length")

    try:
        asyncio.run(run())
    finally:
        worker.close()


def test_a_long_blocking_list_waits_its_turn_but_a_stall_times_out(slow_loaded: LoadedModel) -> None:
    """run_many_blocking's timeout bounds the wait for the next answer: six one-at-a-time requests finish under a
    timeout of three times one request's time (their total is about six), and one request longer than it still fails."""
    import time

    worker = ModelWorker(slow_loaded, ModelSpec(name="slow", max_batch_size=1, max_wait_ms=0), ServingMetrics())

    def reqs(n: int, tokens: int) -> list[GenRequest]:
        return [_req(slow_loaded, f"Impression {i}:", max_new_tokens=tokens, min_new_tokens=tokens) for i in range(n)]

    try:
        started = time.perf_counter()
        worker.run_many_blocking(reqs(1, 120), 30)
        one = time.perf_counter() - started
        done = worker.run_many_blocking(reqs(6, 120), 3 * one)
        assert [len(r.token_ids) for r in done] == [120] * 6, one
        with pytest.raises(RequestTimeout):
            worker.run_many_blocking(reqs(1, 400), 0.03)
    finally:
        worker.close()
