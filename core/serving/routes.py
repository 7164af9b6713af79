"""OpenAI-compatible routes: GET /v1/models, POST /v1/completions and /v1/chat/completions (JSON or server-sent events).

The official `openai` Python client works unchanged (base_url=http://host:port/v1, api_key=<finmed key>):
`stream_options={"include_usage": True}` adds a last chunk with the usage, `response_format` with a json_schema
decodes under that schema, `seed` fixes sampling, `logprobs` / `top_logprobs` report token log-probabilities.
A chat's leading system turn is a cached prefix: computed once, reused by every request that shares it.
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
from core.serving.batcher import ModelWorker
from core.serving.gen_request import GenRequest
from core.serving.requests import build_request
from core.serving.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
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


def _usage(reqs: list[GenRequest]) -> dict[str, Any]:
    prompt = sum(len(r.prompt_ids) for r in reqs)
    completion = sum(len(r.token_ids) for r in reqs)
    cached = sum(r.cached_tokens for r in reqs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _scores(req: GenRequest) -> dict[str, Any]:
    """finmed extension: {"token_scores": [...]} when the request asked for score_token_ids."""
    return {} if req.first_scores is None else {"token_scores": [float(x) for x in req.first_scores]}


def _include_usage(body: SamplingFields) -> bool:
    return body.stream_options is not None and body.stream_options.include_usage


def _chat_logprobs(worker: ModelWorker, req: GenRequest, start: int = 0) -> dict[str, Any] | None:
    """OpenAI chat `logprobs`: {"content": [{token, logprob, bytes, top_logprobs}]} from token `start` on."""
    if not req.logprobs:
        return None
    content = []
    for i in range(start, len(req.token_logprobs)):
        token = worker.model.decode([req.token_ids[i]])
        top = req.top[i] if i < len(req.top) else {}
        content.append(
            {
                "token": token,
                "logprob": req.token_logprobs[i],
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": (t := worker.model.decode([k])), "logprob": v, "bytes": list(t.encode())}
                    for k, v in top.items()
                ],
            }
        )
    return {"content": content}


def _text_logprobs(worker: ModelWorker, req: GenRequest) -> dict[str, Any] | None:
    """OpenAI completion `logprobs`: tokens, token_logprobs, top_logprobs, text_offset."""
    if not req.logprobs:
        return None
    tokens = [worker.model.decode([t]) for t in req.token_ids[: len(req.token_logprobs)]]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    top = [{worker.model.decode([k]): v for k, v in alt.items()} for alt in req.top] if req.top_logprobs else None
    return {"tokens": tokens, "token_logprobs": req.token_logprobs, "top_logprobs": top, "text_offset": offsets}


def _system_prefix(worker: ModelWorker, messages: list[dict[str, str]]) -> str | None:
    """The rendered leading system turn(s), the prefix many chat requests share (None without one)."""
    head = []
    for message in messages:
        if message["role"] != "system":
            break
        head.append(message)
    if not head or len(head) == len(messages):
        return None
    return worker.model.chat_prompt(head, add_generation_prompt=False)


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    """OpenAI model list: every model version and adapter this server serves (loaded and ready); an adapter names the
    base it runs on as its `parent` (as vLLM lists LoRA adapters)."""
    state = get_state(request)
    served = state.served() if state.ready else []
    return {
        "object": "list",
        "data": [
            {
                "id": worker.spec.name,
                "object": "model",
                "created": int(
                    worker.model.adapters[worker.adapter].loaded_at if worker.adapter else worker.model.loaded_at
                ),
                "owned_by": "finmed",
                "max_model_len": worker.model.context_length,
                "parent": worker.parent,
                "root": str(worker.model.adapters[worker.adapter].folder if worker.adapter else worker.model.folder),
            }
            for worker in served
        ],
    }


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


# With `stream: true` the 200 answer is server-sent events (each `data:` line a JSON chunk, then `data: [DONE]`).
STREAMED = {
    200: {
        "description": "The completion (JSON), or with `stream: true` server-sent events of JSON chunks.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "One event: `data` is a JSON chunk (or an error object), the last one `[DONE]`.",
                    "properties": {"data": {"type": "string"}},
                    "required": ["data"],
                }
            }
        },
    }
}


@router.post("/completions", responses=STREAMED)
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
            last = {"index": 0, "text": "", "logprobs": _text_logprobs(worker, reqs[0]),
                    "finish_reason": reqs[0].finish_reason}  # fmt: skip
            yield base | {"choices": [last], "usage": _usage(reqs)}
            if _include_usage(body):
                yield base | {"choices": [], "usage": _usage(reqs)}
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
                {"index": i, "text": r.text, "logprobs": _text_logprobs(worker, r), "finish_reason": r.finish_reason}
                | _scores(r)
                for i, r in enumerate(reqs)
            ],
            "usage": _usage(reqs),
        }
    )


@router.post("/chat/completions", responses=STREAMED)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """OpenAI chat completion over the model's chat template; `stream` sends SSE chunks."""
    worker = get_state(request).worker(body.model)
    messages = [m.model_dump() for m in body.messages]
    prompt = worker.model.chat_prompt(messages)
    system = _system_prefix(worker, messages)
    req = build_request(worker, prompt, body, body.max_completion_tokens or body.max_tokens, cache_prefix=system)
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
            last = {
                "index": 0,
                "delta": {},
                "logprobs": _chat_logprobs(worker, req),
                "finish_reason": req.finish_reason,
            }
            yield head | {"choices": [last], "usage": _usage([req])}
            if _include_usage(body):
                yield head | {"choices": [], "usage": _usage([req])}
            _log_done("chat", rid, body.model, [req], started)

        return _sse(chunks())
    await _until_done_or_gone(worker.run(req, timeout), request)
    _log_done("chat", rid, body.model, [req], started)
    return JSONResponse(
        base
        | {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": req.text},
                    "logprobs": _chat_logprobs(worker, req),
                    "finish_reason": req.finish_reason,
                }
            ],
            "usage": _usage([req]),
        }
    )
