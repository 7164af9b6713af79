"""The finmed serving client (sync and async) against the real server: results, errors, retries on 429."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.errors import NotFoundError, PermissionDenied, ValidationError
from core.serving.client import AsyncServingClient, ServingClient


def test_sync_client_completes_chats_and_streams(server) -> None:  # type: ignore[no-untyped-def]
    with ServingClient(server.url, server.key) as client:
        assert client.ready()
        done = client.complete("tiny", "Impression:", max_tokens=5, min_tokens=5, temperature=0)
        assert done.completion_tokens == 5 and done.finish_reason == "length" and done.text
        messages = [{"role": "user", "content": "hello"}]
        whole = client.chat("tiny", messages, max_tokens=8, temperature=0)
        assert "".join(client.stream_chat("tiny", messages, max_tokens=8, temperature=0)) == whole.text
        assert "finmed:num_requests_running" in client.metrics_text()
        with pytest.raises(NotFoundError, match="not served here"):
            client.complete("nope", "hi")
        with pytest.raises(ValidationError, match="max_tokens"):
            client.complete("tiny", "hi", max_tokens=0)
    with ServingClient(server.url, "fm-wrong") as bad, pytest.raises(PermissionDenied, match="invalid API key"):
        bad.complete("tiny", "hi")


def test_sync_client_retries_when_the_queue_is_full(server) -> None:  # type: ignore[no-untyped-def]
    """tiny-one holds one waiting request; four at once overflow it, and the client's retries get all through."""
    with ServingClient(server.url, server.key, retries=30, backoff_s=0.05) as client:
        with ThreadPoolExecutor(4) as pool:
            done = list(
                pool.map(
                    lambda _: client.complete("tiny-one", "Impression:", max_tokens=60, min_tokens=60, temperature=0),
                    range(4),
                )
            )
        assert [d.completion_tokens for d in done] == [60] * 4
        assert len({d.text for d in done}) == 1
        metrics = client.metrics_text()
    assert 'finmed:request_errors_total{kind="queue_full"}' in metrics


def test_async_client(server) -> None:  # type: ignore[no-untyped-def]
    prompts = ("a b", "c d", "e f")
    messages = [{"role": "user", "content": "x"}]

    async def run() -> tuple[list[str], str, str]:
        async with AsyncServingClient(server.url, server.key) as client:
            done = await asyncio.gather(*(client.complete("tiny", p, max_tokens=6, temperature=0) for p in prompts))
            pieces = [p async for p in client.stream_chat("tiny", messages, max_tokens=6, temperature=0)]
            whole = await client.chat("tiny", messages, max_tokens=6, temperature=0)
            return [d.text for d in done], "".join(pieces), whole.text

    texts, streamed, whole = asyncio.run(run())
    with ServingClient(server.url, server.key) as sync:  # concurrent async answers equal one-at-a-time ones, in order
        assert texts == [sync.complete("tiny", p, max_tokens=6, temperature=0).text for p in prompts]
    assert streamed == whole and whole
