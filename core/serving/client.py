"""The Python client of the model server (sync and async): the only way the rest of finmed talks to it over HTTP.

Retries 429 (queue full) and 503 (still loading) with exponential backoff, honouring Retry-After, and turns
error bodies into project exceptions carrying the server's one-line message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import FinmedError, NotFoundError, PermissionDenied, ValidationError

RETRY_STATUSES = (429, 503)


class ServingError(FinmedError):
    """The model server answered with an error that is not the caller's input (5xx, timeout, gave up retrying)."""

    http_status = 502


@dataclass(frozen=True)
class Completion:
    """One generated text with its finish reason and token counts."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    token_scores: tuple[float, ...] | None = None  # log-probabilities of the asked score_token_ids (first position)
    logprobs: dict[str, Any] | None = None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    status = response.status_code
    if status == 404:
        raise NotFoundError(message)
    if status in (401, 403):
        raise PermissionDenied(message)
    if status in (400, 413, 422):
        raise ValidationError(message)
    raise ServingError(f"model server answered {status}: {message}")


def _delay(response: httpx.Response | None, attempt: int, backoff_s: float) -> float:
    wait = backoff_s * (2**attempt)
    if response is not None and response.headers.get("retry-after", "").isdigit():
        wait = max(wait, float(response.headers["retry-after"]))
    return min(wait, 30.0)


def _completion(body: dict[str, Any]) -> Completion:
    choice, usage = body["choices"][0], body.get("usage") or {}
    text = choice["message"]["content"] if "message" in choice else choice["text"]
    scores = choice.get("token_scores")
    return Completion(
        text,
        choice.get("finish_reason"),
        usage.get("prompt_tokens", 0),
        usage.get("completion_tokens", 0),
        cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        token_scores=None if scores is None else tuple(scores),
        logprobs=choice.get("logprobs"),
    )


def _sse_deltas(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        if "error" in chunk:
            raise ServingError(chunk["error"]["message"])
        if not chunk["choices"]:  # the usage chunk of stream_options.include_usage
            continue
        choice = chunk["choices"][0]
        piece = choice["delta"].get("content") if "delta" in choice else choice.get("text")
        if piece:
            yield piece


class ServingClient:
    """Synchronous client.

    Args:
        base_url: server root, e.g. http://127.0.0.1:8000 (no /v1).
        api_key: a key from `finmed serve keys add NAME --role ROLE`.
        timeout_s: per-HTTP-call timeout.
        retries: attempts after the first on 429/503 and connection errors.
        backoff_s: first retry delay; doubles each attempt (Retry-After wins when longer).
    """

    def __init__(
        self, base_url: str, api_key: str, *, timeout_s: float = 120.0, retries: int = 4, backoff_s: float = 0.25
    ) -> None:
        self.retries, self.backoff_s = retries, backoff_s
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.post(path, json=body)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ServingError(f"model server at {self._http.base_url} unreachable: {exc}") from None
                time.sleep(_delay(None, attempt, self.backoff_s))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                _raise_for(response)
                return response
            time.sleep(_delay(response, attempt, self.backoff_s))
        raise AssertionError("unreachable")

    def complete(self, model: str, prompt: str, **options: Any) -> Completion:
        """POST /v1/completions for one prompt (options: max_tokens, temperature, stop, guided_choice, ...)."""
        return _completion(self._post("/v1/completions", {"model": model, "prompt": prompt, **options}).json())

    def chat(self, model: str, messages: list[dict[str, str]], **options: Any) -> Completion:
        """POST /v1/chat/completions."""
        return _completion(self._post("/v1/chat/completions", {"model": model, "messages": messages, **options}).json())

    def stream_chat(self, model: str, messages: list[dict[str, str]], **options: Any) -> Iterator[str]:
        """Yield pieces of a streamed chat completion (no retries once streaming has begun)."""
        body = {"model": model, "messages": messages, "stream": True, **options}
        with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            yield from _sse_deltas(response.iter_lines())

    def ready(self) -> bool:
        """True when /readyz says every model is loaded."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def metrics_text(self) -> str:
        """The Prometheus exposition text of GET /metrics."""
        response = self._http.get("/metrics")
        _raise_for(response)
        return response.text

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncServingClient:
    """Asynchronous client with the same methods as ServingClient (awaitable)."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout_s: float = 120.0, retries: int = 4, backoff_s: float = 0.25
    ) -> None:
        self.retries, self.backoff_s = retries, backoff_s
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.post(path, json=body)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ServingError(f"model server at {self._http.base_url} unreachable: {exc}") from None
                await asyncio.sleep(_delay(None, attempt, self.backoff_s))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                _raise_for(response)
                return response
            await asyncio.sleep(_delay(response, attempt, self.backoff_s))
        raise AssertionError("unreachable")

    async def complete(self, model: str, prompt: str, **options: Any) -> Completion:
        """POST /v1/completions for one prompt."""
        response = await self._post("/v1/completions", {"model": model, "prompt": prompt, **options})
        return _completion(response.json())

    async def chat(self, model: str, messages: list[dict[str, str]], **options: Any) -> Completion:
        """POST /v1/chat/completions."""
        response = await self._post("/v1/chat/completions", {"model": model, "messages": messages, **options})
        return _completion(response.json())

    async def stream_chat(self, model: str, messages: list[dict[str, str]], **options: Any) -> AsyncIterator[str]:
        """Yield pieces of a streamed chat completion."""
        body = {"model": model, "messages": messages, "stream": True, **options}
        async with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            async for line in response.aiter_lines():
                pieces = list(_sse_deltas(iter([line])))
                if line == "data: [DONE]":
                    return
                for piece in pieces:
                    yield piece

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncServingClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
