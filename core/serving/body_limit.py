"""Refuse request bodies over the configured size with 413 before they are read into memory.

Written by hand because neither Starlette nor uvicorn limits body size: a `Content-Length` over the limit is
answered at once, and a body sent without one (chunked transfer encoding) is counted as it arrives and cut off
at the limit, so a client cannot make the server buffer more than `max_bytes` of one request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


class BodyTooLarge(Exception):
    """Raised inside the app's receive once the body passes the limit (the app's answer is then replaced)."""


class BodyLimit:
    """ASGI middleware answering 413 (the server's error body) for bodies over `max_bytes`.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the largest body accepted.
        on_refuse: called once per refused request (e.g. to count it in a metric).
    """

    def __init__(self, app: Any, *, max_bytes: int, on_refuse: Callable[[], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refuse = on_refuse

    async def _refuse(self, send: Send, detail: str) -> None:
        if self.on_refuse is not None:
            self.on_refuse()
        message = f"request body {detail} exceeds the {self.max_bytes} byte limit"
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": 413}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers.append((b"connection", b"close"))  # the rest of the body is never read
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None:
            text = length.decode("latin-1").strip()
            if not text.isdigit() or int(text) > self.max_bytes:
                await self._refuse(send, f"of {text} bytes" if text.isdigit() else f"length {text!r}")
                return
        received = 0
        exceeded = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if exceeded:  # the app answered an error about the cut-off body: answer 413 instead, once
                if not answered:
                    answered = True
                    await self._refuse(send, "(sent without Content-Length)")
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not answered:
                answered = True
                await self._refuse(send, "(sent without Content-Length)")
