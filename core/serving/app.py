"""The model server's FastAPI app: loads the configured models, checks API keys, maps errors to 4xx/5xx.

Routes: /healthz and /readyz (no key), /metrics, the OpenAI-compatible /v1/* routes (core/serving/routes.py)
and whatever routers domain plugins contribute (`DomainPlugin.api_routes`), all behind `Authorization: Bearer`.
Logs carry request ids, lengths and timings, never prompt or output text.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import DatabaseError, FinmedError, NotFoundError
from core.serving.batcher import ModelWorker, QueueFull
from core.serving.config import ServeConfig, resolve_model_folder
from core.serving.engine import GenRequest, LoadedModel
from core.serving.metrics import ServingMetrics

log = logging.getLogger("finmed.serving")

MAX_BODY_BYTES = 256 * 1024  # a 1 MB prompt is refused before it is read or tokenised
KEY_CACHE_SECONDS = 30.0


class Unauthorized(FinmedError):
    """Missing or unknown API key."""

    http_status = 401


class NotReady(FinmedError):
    """Models are still loading (or failed to load)."""

    http_status = 503


@dataclass
class ServingState:
    """Everything the routes share: config, loaded workers, metrics, the key cache."""

    config: ServeConfig
    models_dir: Path
    engine: Engine | None
    metrics: ServingMetrics = field(default_factory=ServingMetrics)
    workers: dict[str, ModelWorker] = field(default_factory=dict)
    ready: bool = False
    load_error: str | None = None
    _keys: dict[str, float] = field(default_factory=dict)

    def load_models(self) -> None:
        """Load every configured model (called once, in a background thread, at start-up)."""
        try:
            for spec in self.config.models:
                folder = resolve_model_folder(spec, self.models_dir)
                model = LoadedModel(spec.name, folder, device=self.config.device)
                self.metrics.model_load_seconds.labels(spec.name, model.device).set(model.load_seconds)
                self.metrics.model_memory_bytes.labels(spec.name).set(model.memory_bytes)
                self.workers[spec.name] = ModelWorker(model, spec, self.metrics)
                log.info("loaded model=%s device=%s seconds=%.2f", spec.name, model.device, model.load_seconds)
            self.ready = True
        except FinmedError as exc:
            self.load_error = str(exc)
            log.error("model loading failed: %s", exc)

    def worker(self, name: str) -> ModelWorker:
        """The worker serving model version `name`.

        Raises:
            NotReady: models are still loading.
            NotFoundError: no such model (the message lists the loaded ones).
        """
        if not self.ready:
            raise NotReady(self.load_error or "models are still loading; retry shortly (GET /readyz)")
        if name not in self.workers:
            raise NotFoundError(f"model {name!r} is not served here; available: {', '.join(sorted(self.workers))}")
        return self.workers[name]

    async def generate(self, model: str, prompt: str, **options: Any) -> GenRequest:
        """Generate in-process through the model's batcher (for domain routes such as /v1/finance/score).

        Args:
            model: version name.
            prompt: full prompt text (already templated).
            **options: the OpenAI/vLLM sampling fields: max_tokens, temperature, stop, guided_choice, ...

        Returns:
            The finished request (text, token_ids, finish_reason).
        """
        from core.serving.routes import build_request
        from core.serving.schemas import SamplingFields

        worker = self.worker(model)
        body = SamplingFields(model=model, **options)
        req = build_request(worker, prompt, body, body.max_tokens)
        return await worker.run(req, body.timeout(worker.spec.timeout_s))

    def check_key(self, key: str) -> None:
        """Accept an active API key (cached for KEY_CACHE_SECONDS), else raise Unauthorized."""
        from core.db.engine import session_scope
        from core.serving.keys import hash_key, lookup_key

        digest = hash_key(key)
        now = time.monotonic()
        if self._keys.get(digest, 0.0) > now:
            return
        if self.engine is None:
            raise DatabaseError("API keys are required but no database is configured")
        with session_scope(self.engine) as session:
            found = lookup_key(session, key=key) is not None
        if not found:
            raise Unauthorized("invalid API key; create one with `finmed serve keys add NAME`")
        self._keys[digest] = now + KEY_CACHE_SECONDS

    def close(self) -> None:
        """Stop every worker thread."""
        for worker in self.workers.values():
            worker.close()


def get_state(request: Request) -> ServingState:
    """The app's ServingState (domain routes use it to generate in-process)."""
    return request.app.state.serving  # type: ignore[no-any-return]


def require_key(request: Request) -> None:
    """FastAPI dependency: a valid `Authorization: Bearer <key>` header, unless keys are switched off."""
    state = get_state(request)
    if not state.config.require_api_key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    state.check_key(key.strip())


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An OpenAI-style error body: {"error": {"message", "type", "code"}}."""
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return 400, f"request body is not valid JSON (UTF-8): {first.get('ctx', {}).get('error', 'parse error')}"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return 422, f"{where}: {first.get('msg', 'invalid')}"


def _install_error_handlers(app: FastAPI, state: ServingState) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        state.metrics.errors.labels("invalid_request").inc()
        return _error(status, message, "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if "parsing the body" in message:
            message = "request body could not be parsed: send UTF-8 encoded JSON"
        state.metrics.errors.labels("invalid_request" if exc.status_code < 500 else "server_error").inc()
        return _error(exc.status_code, message, "invalid_request_error")

    @app.exception_handler(FinmedError)
    async def _finmed(_: Request, exc: FinmedError) -> JSONResponse:
        kinds = {401: "unauthorized", 404: "not_found", 429: "queue_full", 503: "not_ready", 504: "timeout"}
        kind = kinds.get(exc.http_status, "invalid_request" if exc.http_status < 500 else "server_error")
        state.metrics.errors.labels(kind).inc()
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
        if isinstance(exc, NotReady):
            headers = {"Retry-After": "2"}
        return _error(exc.http_status, str(exc), kind, headers)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        state.metrics.errors.labels("server_error").inc()
        log.exception("unhandled error: %s", type(exc).__name__)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log", "server_error")


def _install_middleware(app: FastAPI, state: ServingState) -> None:
    @app.middleware("http")
    async def _log_and_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            state.metrics.errors.labels("body_too_large").inc()
            response: Response = _error(
                413, f"request body of {length} bytes exceeds the {MAX_BODY_BYTES} byte limit", "invalid_request_error"
            )
        else:
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
            return JSONResponse({"status": "ready", "models": sorted(state.workers)})
        detail = state.load_error or "loading"
        return JSONResponse({"status": "not ready", "detail": detail}, status_code=503)

    @app.get("/metrics", dependencies=[Depends(require_key)])
    def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(openai_router, dependencies=[Depends(require_key)])
    for plugin in load_plugins():
        if plugin.api_routes is not None:
            app.include_router(plugin.api_routes(), dependencies=[Depends(require_key)])
    return app
