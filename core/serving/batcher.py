"""Dynamic batching per model: a bounded queue, batches that close at max_batch_size or max_wait_ms, timeouts.

One worker thread per model pulls requests from its queue and runs them through the engine as one batch. The
asyncio side (the HTTP app) submits a request and awaits it; a full queue raises QueueFull (429), a request
still unanswered after its timeout raises RequestTimeout (504) and is marked cancelled, so the engine drops its
row and, when no live row is left, stops the batch: the slot is free again.

A request that carries a shared prefix (a system turn) and runs alone takes the engine's cached-prefix path, so only
its own tail is prefilled; with `prefix_cache: prefer` such requests always run alone on their cached prefix instead
of joining a batch (worth it when prefill dominates: long shared prefixes, short answers).

Hand-written because no maintained library batches onnxruntime-genai generators for us; the runtime's own Engine
(og.Engine, 0.18) runs static batches of at most 4 on CPU and cannot reuse a prefix beside other requests
(core/serving/engine.py says why).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from core.errors import FinmedError
from core.serving.config import ModelSpec
from core.serving.engine import LoadedModel
from core.serving.gen_request import GenRequest
from core.serving.serving_metrics import ServingMetrics

log = logging.getLogger("finmed.serving")


class QueueFull(FinmedError):
    """The model's queue holds max_queue requests; the client should retry after `retry_after` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(FinmedError):
    """The request was not answered within its timeout."""

    http_status = 504


@dataclass(eq=False)
class _Pending:
    req: GenRequest
    arrived: float
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    finished_at: float | None = None
    on_done: Callable[[], object] | None = None
    running: bool = False


class ModelWorker:
    """The queue and batching thread of one loaded model."""

    adapter: str | None = None  # requests built for this worker run on the base model itself
    parent: str | None = None

    def __init__(self, model: LoadedModel, spec: ModelSpec, metrics: ServingMetrics) -> None:
        self.model = model
        self.spec = spec
        self.metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._avg_batch_seconds = 1.0
        self._thread = threading.Thread(target=self._loop, name=f"serve-{spec.name}", daemon=True)
        self._thread.start()

    # ---- submit side (any thread) -------------------------------------------------------------------------
    def submit(self, req: GenRequest, on_done: Callable[[], object] | None = None) -> _Pending:
        """Queue `req`; raises QueueFull when max_queue requests are already waiting.

        `on_done` is called from the worker thread once the request's batch has finished.
        """
        pending = _Pending(req=req, arrived=time.perf_counter(), on_done=on_done)
        with self._cond:
            if len(self._queue) >= self.spec.max_queue:
                retry = max(1, round(self._avg_batch_seconds))
                raise QueueFull(
                    f"model {self.spec.name!r} has {len(self._queue)} requests waiting (max_queue "
                    f"{self.spec.max_queue}); retry after {retry} s",
                    retry_after=retry,
                )
            self._queue.append(pending)
            self.metrics.requests_waiting.labels(self.spec.name).set(len(self._queue))
            self._cond.notify_all()
        return pending

    def withdraw(self, pending: _Pending) -> None:
        """Cancel `pending`: drop it from the queue if still waiting, else let the engine drop its row."""
        pending.req.cancelled.set()
        with self._cond:
            try:
                self._queue.remove(pending)
            except ValueError:
                pass
            self.metrics.requests_waiting.labels(self.spec.name).set(len(self._queue))

    def close(self) -> None:
        """Stop the worker thread after the current batch."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    # ---- worker thread ------------------------------------------------------------------------------------
    def _take_batch(self) -> list[_Pending] | None:
        spec = self.spec
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            head = self._queue[0].req
            alone = head.constraint is not None  # engine.py's note above GenRequest says why
            if alone or (spec.prefix_cache == "prefer" and self.model.can_cache(head)):
                first = self._queue.popleft()
                self.metrics.requests_waiting.labels(spec.name).set(len(self._queue))
                return [first] if not head.cancelled.is_set() else []
            key = head.batch_key()
            deadline = self._queue[0].arrived + spec.max_wait_ms / 1000
            while not self._closed:
                same = sum(1 for p in self._queue if p.req.batch_key() == key)
                left = deadline - time.perf_counter()
                if same >= spec.max_batch_size or left <= 0 or not self._queue:
                    break
                self._cond.wait(timeout=left)
            batch = [p for p in self._queue if p.req.batch_key() == key][: spec.max_batch_size]
            for p in batch:
                self._queue.remove(p)
            self.metrics.requests_waiting.labels(spec.name).set(len(self._queue))
        return [p for p in batch if not p.req.cancelled.is_set()]

    def _loop(self) -> None:
        name = self.spec.name
        m = self.metrics
        while True:
            try:
                batch = self._take_batch()
            except Exception:  # noqa: BLE001  (a bug here must not silently stop the model's only worker)
                log.exception("batcher of model %s failed to form a batch", name)
                time.sleep(0.1)
                continue
            if batch is None:
                return
            if not batch:
                continue
            m.batch_size.labels(name).observe(len(batch))
            m.requests_running.labels(name).set(len(batch))
            started = time.perf_counter()
            for p in batch:
                p.running = True
                p.req.on_finish = functools.partial(self._complete, p, None)
            try:
                if len(batch) == 1 and self.spec.prefix_cache != "off" and self.model.can_cache(batch[0].req):
                    self.model.generate_cached(batch[0].req)
                    m.cached_prompt_tokens.labels(name).inc(batch[0].req.cached_tokens)
                else:
                    self.model.generate([p.req for p in batch])
                error: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001  (handed to every waiting request, never lost)
                error = exc
            self._avg_batch_seconds = 0.8 * self._avg_batch_seconds + 0.2 * (time.perf_counter() - started)
            for p in batch:
                self._complete(p, error)

    def _complete(self, p: _Pending, error: BaseException | None) -> None:
        """Answer `p` (once): record metrics, wake its waiter."""
        if p.done.is_set():
            return
        p.error = error
        p.finished_at = time.perf_counter()
        if p.running:
            self.metrics.requests_running.labels(self.spec.name).dec()
        self._observe(p)
        p.done.set()
        if p.on_done is not None:
            try:
                p.on_done()
            except RuntimeError:  # the waiting event loop has closed (client and server gone)
                pass

    def _observe(self, p: _Pending) -> None:
        name, m, req = p.req.adapter or self.spec.name, self.metrics, p.req  # an adapter's requests under its name
        if p.error is not None or req.cancelled.is_set() or req.started_at is None:
            return
        m.queue_time.labels(name).observe(req.started_at - p.arrived)
        if req.first_token_at is not None:
            m.ttft.labels(name).observe(req.first_token_at - p.arrived)
        for a, b in zip(req.token_times, req.token_times[1:], strict=False):
            m.inter_token.labels(name).observe(b - a)
        m.prompt_tokens.labels(name).inc(len(req.prompt_ids))
        m.generation_tokens.labels(name).inc(len(req.token_ids))
        m.e2e.labels(name).observe((req.token_times[-1] if req.token_times else p.finished_at or p.arrived) - p.arrived)
        m.requests.labels(name, req.finish_reason or "unknown").inc()

    # ---- asyncio side -------------------------------------------------------------------------------------
    async def run(self, req: GenRequest, timeout_s: float) -> GenRequest:
        """Queue `req`, wait for its batch, and return it filled in.

        Raises:
            QueueFull: the queue is full (429).
            RequestTimeout: not finished within `timeout_s` (504); the request is cancelled.
        """
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        pending = self.submit(req, on_done=lambda: loop.call_soon_threadsafe(_resolve, finished))
        try:
            await asyncio.wait_for(finished, timeout=timeout_s)
        except TimeoutError:
            self.withdraw(pending)
            raise RequestTimeout(
                f"model {self.spec.name!r} did not answer within {timeout_s:g} s; retry, or raise timeout_s"
            ) from None
        except asyncio.CancelledError:
            self.withdraw(pending)
            raise
        if pending.error is not None:
            raise pending.error
        return req

    def run_blocking(self, req: GenRequest, timeout_s: float) -> GenRequest:
        """`run` for a caller without an event loop (a worker thread, a CLI): queue `req` and wait for it.

        Raises:
            QueueFull: the queue is full.
            RequestTimeout: not finished within `timeout_s`; the request is cancelled.
        """
        return self.run_many_blocking([req], timeout_s)[0]

    def run_many_blocking(self, reqs: list[GenRequest], timeout_s: float) -> list[GenRequest]:
        """Queue every request of `reqs` (so they can share batches), then wait for all of them.

        `timeout_s` bounds the wait for the next answer, not for the whole list: a caller queueing more requests
        than one batch holds (a cascade's 64 prompts) waits its turn as long as answers keep coming, while a stalled
        model still times out.

        Raises:
            QueueFull: the queue filled up (requests already queued are withdrawn).
            RequestTimeout: no request finished for `timeout_s`; the unfinished ones are cancelled.
        """
        pendings: list[_Pending] = []
        try:
            for req in reqs:
                pendings.append(self.submit(req))
        except QueueFull:
            for p in pendings:
                self.withdraw(p)
            raise
        deadline = time.perf_counter() + timeout_s
        for p in pendings:
            if not p.done.wait(timeout=max(0.0, deadline - time.perf_counter())):
                for other in pendings:
                    self.withdraw(other)
                raise RequestTimeout(
                    f"model {self.spec.name!r} did not answer within {timeout_s:g} s; retry, or raise timeout_s"
                )
            latest = max((q.finished_at or 0.0) for q in pendings if q.done.is_set())
            deadline = max(deadline, latest + timeout_s)  # an answer came: the next one gets a full timeout_s
        for p in pendings:
            if p.error is not None:
                raise p.error
        return reqs

    def open_stream(self, req: GenRequest, timeout_s: float) -> AsyncIterator[str]:
        """Queue `req` now and return an iterator over its text as it is generated.

        The request is queued before this returns, so QueueFull surfaces as a 429 before any byte is sent.
        Stopping the iteration (client gone) cancels the request and frees its row.

        Raises:
            QueueFull: the queue is full.
        """
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        req.on_text = lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text)
        pending = self.submit(req, on_done=lambda: loop.call_soon_threadsafe(pieces.put_nowait, None))
        return self._drain(pending, pieces, timeout_s)

    async def _drain(
        self, pending: _Pending, pieces: asyncio.Queue[str | None], timeout_s: float
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                piece = await asyncio.wait_for(pieces.get(), timeout=left)
                if piece is None:
                    break
                yield piece
        except TimeoutError:
            self.withdraw(pending)
            raise RequestTimeout(
                f"model {self.spec.name!r} did not finish within {timeout_s:g} s; retry, or raise timeout_s"
            ) from None
        finally:
            if not pending.done.is_set():
                self.withdraw(pending)
        if pending.error is not None:
            raise pending.error


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AdapterWorker:
    """A LoRA adapter served on its base model's worker: the base's queue, batches (grouped by adapter, see
    GenRequest.batch_key) and limits; requests built for it (core.serving.requests.build_request) carry the adapter.
    """

    def __init__(self, base: ModelWorker, name: str) -> None:
        self.base = base
        self.model = base.model
        self.adapter: str | None = name
        self.parent: str | None = base.spec.name
        self.spec = base.spec.model_copy(update={"name": name, "adapters": []})

    def submit(self, req: GenRequest, on_done: Callable[[], object] | None = None) -> _Pending:
        """See ModelWorker.submit."""
        return self.base.submit(req, on_done)

    def withdraw(self, pending: _Pending) -> None:
        """See ModelWorker.withdraw."""
        self.base.withdraw(pending)

    async def run(self, req: GenRequest, timeout_s: float) -> GenRequest:
        """See ModelWorker.run."""
        return await self.base.run(req, timeout_s)

    def run_blocking(self, req: GenRequest, timeout_s: float) -> GenRequest:
        """See ModelWorker.run_blocking."""
        return self.base.run_blocking(req, timeout_s)

    def run_many_blocking(self, reqs: list[GenRequest], timeout_s: float) -> list[GenRequest]:
        """See ModelWorker.run_many_blocking."""
        return self.base.run_many_blocking(reqs, timeout_s)

    def open_stream(self, req: GenRequest, timeout_s: float) -> AsyncIterator[str]:
        """See ModelWorker.open_stream."""
        return self.base.open_stream(req, timeout_s)
