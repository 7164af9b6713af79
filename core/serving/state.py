"""What the server's routes share: the loaded model workers, metrics, API-key checks, and in-process generation.

`ServingState.generate` is how a domain route (finance score, medical draft) asks for a model output in-process;
it goes through the same request building, batcher, limits and metrics as the OpenAI-style routes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import Engine

from core.errors import DatabaseError, FinmedError, NotFoundError
from core.serving.batcher import ModelWorker
from core.serving.config import ServeConfig, resolve_model_folder
from core.serving.engine import GenRequest, LoadedModel
from core.serving.requests import build_request
from core.serving.schemas import SamplingFields
from core.serving.serving_metrics import ServingMetrics

log = logging.getLogger("finmed.serving")

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

    @classmethod
    def in_process(cls, models: dict[str, Path], **spec_fields: Any) -> ServingState:
        """A loaded state serving `models` (name -> exported folder) to this process only: no HTTP, no API keys.

        `spec_fields` are ModelSpec fields applied to every model (max_batch_size, prefix_cache, ...).

        Raises:
            FinmedError: a folder could not be loaded (the message names it).
        """
        from core.serving.config import ModelSpec

        specs = [ModelSpec(name=name, path=Path(folder), **spec_fields) for name, folder in models.items()]
        state = cls(config=ServeConfig(models=specs, require_api_key=False, device="cpu"), models_dir=Path("."),
                    engine=None)  # fmt: skip
        state.load_models()
        if not state.ready:
            raise FinmedError(state.load_error or "models did not load")
        return state

    def load_models(self) -> None:
        """Load every configured model (called once, in a background thread, at start-up)."""
        try:
            for spec in self.config.models:
                folder = resolve_model_folder(spec, self.models_dir)
                model = LoadedModel(
                    spec.name,
                    folder,
                    device=self.config.device,
                    prefix_slots=0 if spec.prefix_cache == "off" else spec.prefix_slots,
                    max_slot_tokens=spec.max_prompt_tokens + spec.max_new_tokens_limit,
                    session_options=spec.session_options(),
                )
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
        worker = self.worker(model)
        body = SamplingFields(model=model, **options)
        req = build_request(worker, prompt, body, body.max_tokens)
        return await worker.run(req, body.timeout(worker.spec.timeout_s))

    def generate_blocking(self, model: str, prompt: str, **options: Any) -> GenRequest:
        """`generate` for callers without an event loop (a thread of the HTTP server, a CLI, a benchmark).

        Same request building, batcher, limits and metrics as `generate`.
        """
        worker = self.worker(model)
        body = SamplingFields(model=model, **options)
        req = build_request(worker, prompt, body, body.max_tokens)
        return worker.run_blocking(req, body.timeout(worker.spec.timeout_s))

    def generate_many_blocking(
        self, model: str, prompts: list[str], options: list[dict[str, Any]] | dict[str, Any] | None = None
    ) -> list[GenRequest]:
        """Several prompts at once (queued together, so the batcher may batch them), without an event loop.

        Args:
            options: sampling fields for every prompt (one dict) or per prompt (a list as long as `prompts`).
        """
        worker = self.worker(model)
        per = options if isinstance(options, list) else [options or {}] * len(prompts)
        if len(per) != len(prompts):
            raise ValueError("options: give one dict per prompt")
        bodies = [SamplingFields(model=model, **o) for o in per]
        reqs = [build_request(worker, p, b, b.max_tokens) for p, b in zip(prompts, bodies, strict=True)]
        timeout = max((b.timeout(worker.spec.timeout_s) for b in bodies), default=worker.spec.timeout_s)
        return worker.run_many_blocking(reqs, timeout)

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
