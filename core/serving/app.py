"""The model server's FastAPI app: loads the configured models, checks API keys, maps errors to 4xx/5xx.

Routes: /healthz and /readyz (no key), /metrics, the OpenAI-compatible /v1/* routes (core/serving/routes.py)
and whatever routers domain plugins contribute (`DomainPlugin.api_routes`), all behind `Authorization: Bearer`.
Every error answer is `{"error": {"message", "type", "code"}}` and is documented in /openapi.json
(core/serving/openapi_errors.py); 429 and 503 carry Retry-After, 405 carries Allow. Bodies over
`max_body_bytes` get 413 before they are read (core/serving/body_limit.py).
Logs carry request ids, lengths and timings, never prompt or output text.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import FinmedError, RateLimited
from core.serving.batcher import QueueFull
from core.serving.body_limit import BodyLimit
from core.serving.config import ServeConfig
from core.serving.openapi_errors import GENERATION, document_errors, error_responses
from core.serving.state import NotReady, ServingState, key_roles, require_key

log = logging.getLogger("finmed.serving")

RETRY_AFTER_DEFAULT = "2"  # seconds, for a 503 (loading, database down) or 429 that names no wait of its own


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An OpenAI-style error body: {"error": {"message", "type", "code"}}."""
    body = {"error": {"message": message, "type": kind, "code": status}}
    headers = dict(headers or {})
    if status in (429, 503):
        headers.setdefault("Retry-After", RETRY_AFTER_DEFAULT)
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return 400, f"request body is not valid JSON (UTF-8): {first.get('ctx', {}).get('error', 'parse error')}"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return 422, f"{where}: {first.get('msg', 'invalid')}"


def _allowed(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path (for 405's Allow header), found by asking
    each route whether it would take the request under that method (Starlette's own matching)."""
    from starlette.routing import Match

    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _install_error_handlers(app: FastAPI, state: ServingState) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        state.metrics.errors.labels("invalid_request").inc()
        return _error(status, message, "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if "parsing the body" in message:
            message = "request body could not be parsed: send UTF-8 encoded JSON, nested at most a few hundred deep"
        state.metrics.errors.labels("invalid_request" if exc.status_code < 500 else "server_error").inc()
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette's Allow names the first route of the path only (GET /v1/adapters)
            headers["Allow"] = ", ".join(_allowed(request))
        return _error(exc.status_code, message, "invalid_request_error", headers or None)

    @app.exception_handler(FinmedError)
    async def _finmed(_: Request, exc: FinmedError) -> JSONResponse:
        kinds = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            429: "queue_full",
            503: "not_ready",
            504: "timeout",
        }
        kind = kinds.get(exc.http_status, "invalid_request" if exc.http_status < 500 else "server_error")
        if isinstance(exc, RateLimited):
            kind = "rate_limited"
        state.metrics.errors.labels(kind).inc()
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull | RateLimited) else None
        if isinstance(exc, NotReady):
            headers = {"Retry-After": RETRY_AFTER_DEFAULT}
        return _error(exc.http_status, str(exc), kind, headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        state.metrics.errors.labels("invalid_request").inc()
        return _error(400, "request body is nested too deeply to parse; flatten it", "invalid_request_error")

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        state.metrics.errors.labels("server_error").inc()
        log.exception("unhandled error: %s", type(exc).__name__)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log", "server_error")


def _install_middleware(app: FastAPI, state: ServingState) -> None:
    app.add_middleware(
        BodyLimit,
        max_bytes=state.config.max_body_bytes,
        on_refuse=lambda: state.metrics.errors.labels("body_too_large").inc(),
    )

    @app.middleware("http")
    async def _log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        length = request.headers.get("content-length")
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        log.info(
            "request id=%s method=%s path=%s body_bytes=%s status=%s ms=%.1f",
            request_id,
            request.method,
            request.url.path,
            length or 0,
            response.status_code,
            1000 * (time.perf_counter() - started),
        )
        return response


def create_app(config: ServeConfig, *, models_dir: Path, engine: Engine | None) -> FastAPI:
    """Build the model server app; models load in a background thread once the server starts.

    Args:
        config: validated serving config.
        models_dir: where model names without a path are looked up.
        engine: database holding api_keys (None only when config.require_api_key is false).
    """
    from core.plugins import load_plugins
    from core.serving.adapter_routes import router as adapter_router
    from core.serving.routes import router as openai_router

    state = ServingState(config=config, models_dir=Path(models_dir), engine=engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=state.load_models, name="serve-load", daemon=True)
        loader.start()
        yield
        loader.join(timeout=60)
        state.close()

    app = FastAPI(title="finmed model server", version="1", lifespan=lifespan)
    app.state.serving = state
    _install_error_handlers(app, state)
    _install_middleware(app, state)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        if state.ready:
            return JSONResponse({"status": "ready", "models": sorted([*state.workers, *state.adapters])})
        detail = state.load_error or "loading"
        return JSONResponse({"status": "not ready", "detail": detail}, status_code=503)

    metrics_doc = {200: {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {}}}}}

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses=metrics_doc,
        dependencies=[Depends(key_roles("engineer"))],
    )
    def metrics() -> Response:
        """Serving metrics in the Prometheus text format (engineer and admin keys)."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    generation = error_responses(*GENERATION)
    app.include_router(openai_router, dependencies=[Depends(require_key)], responses=generation)
    adapter_errors = error_responses(403, 404, 409, 422)
    app.include_router(adapter_router, dependencies=[Depends(require_key)], responses=adapter_errors)
    for plugin in load_plugins():
        if plugin.api_routes is not None:
            domain_errors = error_responses(409, *GENERATION)
            app.include_router(plugin.api_routes(), dependencies=[Depends(require_key)], responses=domain_errors)
    served = [m.name for m in config.models] + [a.name for m in config.models for a in m.adapters]
    document_errors(app, keyed=config.require_api_key, model_names=served)
    return app
