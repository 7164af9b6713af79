"""OpenAI-compatible routes: POST /v1/completions and /v1/chat/completions, plain JSON or server-sent events.

The official `openai` Python client works unchanged (base_url=http://host:port/v1, api_key=<finmed key>).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from core.errors import FinmedError, ValidationError
from core.serving.engine import GenRequest
from core.serving.requests import build_request
from core.serving.schemas import ChatCompletionRequest, CompletionRequest
from core.serving.state import get_state

log = logging.getLogger("finmed.serving")
router = APIRouter(prefix="/v1")


async def _until_done_or_gone(awaitable: Awaitable[GenRequest], request: Request) -> GenRequest:
    """Await the generation; cancel it (freeing its slot) when the client disconnects first."""
    task = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            raise FinmedError("client disconnected")


def _usage(reqs: list[GenRequest]) -> dict[str, int]:
    prompt = sum(len(r.prompt_ids) for r in reqs)
    completion = sum(len(r.token_ids) for r in reqs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _log_done(kind: str, rid: str, model: str, reqs: list[GenRequest], started: float) -> None:
    usage = _usage(reqs)
    log.info(
        "%s id=%s model=%s prompt_tokens=%d completion_tokens=%d finish=%s ms=%.1f",
        kind,
        rid,
        model,
        usage["prompt_tokens"],
        usage["completion_tokens"],
        ",".join(r.finish_reason or "-" for r in reqs),
        1000 * (time.perf_counter() - started),
    )


def _sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
        except FinmedError as exc:
            yield f"data: {json.dumps({'error': {'message': str(exc), 'code': exc.http_status}})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request) -> Any:
    """OpenAI text completion: one choice per prompt; `stream` sends SSE chunks (single prompt only)."""
    worker = get_state(request).worker(body.model)
    prompts = body.prompts()
    reqs = [build_request(worker, p, body, body.max_tokens) for p in prompts]
    rid, created, started = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time()), time.perf_counter()
    timeout = body.timeout(worker.spec.timeout_s)
    if body.stream:
        if len(reqs) != 1:
            raise ValidationError("stream=true takes a single prompt, not a list")
        pieces = worker.open_stream(reqs[0], timeout)

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            base = {"id": rid, "object": "text_completion", "created": created, "model": body.model}
            async for piece in pieces:
                yield base | {"choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
            yield base | {
                "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": reqs[0].finish_reason}],
                "usage": _usage(reqs),
            }
            _log_done("completion", rid, body.model, reqs, started)

        return _sse(chunks())
    await _until_done_or_gone(asyncio.gather(*(worker.run(r, timeout) for r in reqs)), request)  # type: ignore[arg-type]
    _log_done("completion", rid, body.model, reqs, started)
    return JSONResponse(
        {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": [
                {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
                for i, r in enumerate(reqs)
            ],
            "usage": _usage(reqs),
        }
    )


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """OpenAI chat completion over the model's chat template; `stream` sends SSE chunks."""
    worker = get_state(request).worker(body.model)
    prompt = worker.model.chat_prompt([m.model_dump() for m in body.messages])
    req = build_request(worker, prompt, body, body.max_completion_tokens or body.max_tokens)
    rid, created, started = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), time.perf_counter()
    base = {"id": rid, "created": created, "model": body.model}
    timeout = body.timeout(worker.spec.timeout_s)
    if body.stream:
        pieces = worker.open_stream(req, timeout)

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            head = base | {"object": "chat.completion.chunk"}
            yield head | {
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            }
            async for piece in pieces:
                yield head | {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield head | {
                "choices": [{"index": 0, "delta": {}, "finish_reason": req.finish_reason}],
                "usage": _usage([req]),
            }
            _log_done("chat", rid, body.model, [req], started)

        return _sse(chunks())
    await _until_done_or_gone(worker.run(req, timeout), request)
    _log_done("chat", rid, body.model, [req], started)
    return JSONResponse(
        base
        | {
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": req.text}, "finish_reason": req.finish_reason}
            ],
            "usage": _usage([req]),
        }
    )
