"""What the server's routes share: the loaded model workers, metrics, API-key checks, and in-process generation.

`ServingState.generate` is how a domain route (finance score, medical draft) asks for a model output in-process;
it goes through the same request building, batcher, limits and metrics as the OpenAI-style routes.

API keys are looked up on every request (an indexed hash lookup; no cache, so a revoked key is refused at once).
Failed keys are counted per client address (core.rate_limit); an address past `key_failures_per_minute` gets 429
with Retry-After, without its key being checked, and each refusal is audited. A route admits the key roles it
names (`key_roles`); the rest get 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import Engine

from core.errors import ConflictError, DatabaseError, FinmedError, NotFoundError, PermissionDenied, RateLimited
from core.rate_limit import FailureLimiter
from core.serving.batcher import AdapterWorker, ModelWorker
from core.serving.config import ServeConfig, resolve_model_folder
from core.serving.engine import LoadedModel
from core.serving.gen_request import GenRequest
from core.serving.requests import build_request
from core.serving.schemas import SamplingFields
from core.serving.serving_metrics import ServingMetrics

log = logging.getLogger("finmed.serving")


class Unauthorized(FinmedError):
    """Missing or unknown API key."""

    http_status = 401


class NotReady(FinmedError):
    """Models are still loading (or failed to load)."""

    http_status = 503


@dataclass(frozen=True)
class KeyIdentity:
    """The client a request's API key belongs to and the role it acts as."""

    name: str
    role: str


@dataclass
class ServingState:
    """Everything the routes share: config, loaded workers, metrics, the key cache."""

    config: ServeConfig
    models_dir: Path
    engine: Engine | None
    metrics: ServingMetrics = field(default_factory=ServingMetrics)
    workers: dict[str, ModelWorker] = field(default_factory=dict)
    adapters: dict[str, AdapterWorker] = field(default_factory=dict)
    ready: bool = False
    load_error: str | None = None
    key_failures: FailureLimiter | None = None

    def __post_init__(self) -> None:
        if self.key_failures is None:
            self.key_failures = FailureLimiter(f"{self.config.key_failures_per_minute}/minute", scope="api-key")

    @classmethod
    def in_process(
        cls, models: dict[str, Path], *, adapters: dict[str, dict[str, Path]] | None = None, **spec_fields: Any
    ) -> ServingState:
        """A loaded state serving `models` (name -> exported folder) to this process only: no HTTP, no API keys.

        `adapters` maps a base's name to the adapters loaded on it (name -> adapter export folder). `spec_fields` are
        ModelSpec fields applied to every model (max_batch_size, prefix_cache, ...).

        Raises:
            FinmedError: a folder could not be loaded (the message names it).
        """
        from core.serving.config import AdapterSpec, ModelSpec

        on = adapters or {}
        specs = [
            ModelSpec(
                name=name,
                path=Path(folder),
                adapters=[AdapterSpec(name=a, path=Path(p)) for a, p in on.get(name, {}).items()],
                **spec_fields,
            )
            for name, folder in models.items()
        ]
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
                for adapter in spec.adapters:
                    self._load_adapter(adapter.name, spec.name, adapter.path)
            self.ready = True
        except FinmedError as exc:
            self.load_error = str(exc)
            log.error("model loading failed: %s", exc)

    def worker(self, name: str) -> ModelWorker | AdapterWorker:
        """The worker serving model version or adapter `name` (an adapter's worker is its base's, for its adapter).

        Raises:
            NotReady: models are still loading.
            NotFoundError: no such model (the message lists the served ones).
        """
        if not self.ready:
            raise NotReady(self.load_error or "models are still loading; retry shortly (GET /readyz)")
        if name in self.adapters:
            return self.adapters[name]
        if name not in self.workers:
            served = ", ".join(sorted([*self.workers, *self.adapters]))
            raise NotFoundError(f"model {name!r} is not served here; available: {served}")
        return self.workers[name]

    def served(self) -> list[ModelWorker | AdapterWorker]:
        """Every served name's worker: the base models, then the adapters, each sorted by name."""
        bases: list[ModelWorker | AdapterWorker] = [self.workers[n] for n in sorted(self.workers)]
        return bases + [self.adapters[n] for n in sorted(self.adapters)]

    def _load_adapter(self, name: str, base: str, path: Path) -> AdapterWorker:
        if name in self.workers or name in self.adapters:
            raise ConflictError(f"the name {name!r} is already served here; unload it first or choose another")
        if base not in self.workers:
            bases = ", ".join(sorted(self.workers))
            raise NotFoundError(f"adapter {name!r}: no base model {base!r} here; bases: {bases}")
        info = self.workers[base].model.load_adapter(name, Path(path))
        self.adapters[name] = AdapterWorker(self.workers[base], name)
        self.metrics.model_memory_bytes.labels(name).set(info.memory_bytes)
        log.info("loaded adapter=%s base=%s rank=%d path=%s", name, base, info.rank, path)
        return self.adapters[name]

    def load_adapter(self, name: str, base: str, path: Path) -> AdapterWorker:
        """Load an adapter export on served base `base` under `name`, while serving (no restart).

        Raises:
            NotReady: models are still loading.
            ConflictError: `name` is already served.
            NotFoundError / ValidationError: no such base or adapter export, or it does not fit the base.
        """
        if not self.ready:
            raise NotReady(self.load_error or "models are still loading; retry shortly (GET /readyz)")
        return self._load_adapter(name, base, path)

    def unload_adapter(self, name: str) -> None:
        """Stop serving adapter `name` (after the batch running now); requests for it get 404 from then on.

        Raises:
            NotFoundError: no adapter of that name is served.
        """
        view = self.adapters.get(name)
        if view is None:
            served = ", ".join(sorted(self.adapters)) or "none"
            raise NotFoundError(f"no adapter {name!r} is served here; adapters: {served}")
        del self.adapters[name]
        view.model.unload_adapter(name)
        log.info("unloaded adapter=%s base=%s", name, view.parent)

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

        More prompts than the model's queue holds (max_queue) go in turns of max_queue, so an in-process caller with
        a long list (a cascade's LLM budget of 120) waits for its turn instead of being refused as a full queue.

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
        turn = max(1, worker.spec.max_queue)
        done: list[GenRequest] = []
        for start in range(0, len(reqs), turn):
            done += worker.run_many_blocking(reqs[start : start + turn], timeout)
        return done

    def check_key(self, key: str, *, client: str = "") -> KeyIdentity:
        """The active API key's client and role; throttled per client address.

        Raises:
            RateLimited: `client` sent too many unknown keys in the last minute (audited; the key is not checked).
            Unauthorized: unknown or revoked key (counted against `client`).
            DatabaseError: keys are required but no database is configured.
        """
        from core.audit.record import record_event
        from core.db.engine import session_scope
        from core.serving.keys import lookup_key

        if self.engine is None:
            raise DatabaseError("API keys are required but no database is configured")
        limiter = self.key_failures
        assert limiter is not None
        address = client or "unknown"
        if limiter.blocked(address):
            wait = limiter.retry_after(address)
            with session_scope(self.engine) as session:
                payload = {"failures": limiter.failures(address), "retry_after": wait}
                record_event(
                    session,
                    actor=f"client:{address}",
                    action="api_key.throttled",
                    subject_type="client",
                    subject_id=address,
                    payload=payload,
                )
            log.warning("api key throttled client=%s retry_after=%d", address, wait)
            raise RateLimited(
                f"too many invalid API keys from {address} ({limiter.rate}); retry in {wait} s", retry_after=wait
            )
        with session_scope(self.engine) as session:
            row = lookup_key(session, key=key)
            identity = KeyIdentity(row.name, row.role) if row is not None else None
        if identity is None:
            limiter.fail(address)
            raise Unauthorized("invalid API key; create one with `finmed serve keys add NAME --role ROLE`")
        return identity

    def close(self) -> None:
        """Stop every worker thread."""
        for worker in self.workers.values():
            worker.close()


def get_state(request: Request) -> ServingState:
    """The app's ServingState (domain routes use it to generate in-process)."""
    return request.app.state.serving  # type: ignore[no-any-return]


def require_key(request: Request) -> KeyIdentity | None:
    """FastAPI dependency: a valid `Authorization: Bearer <key>` header (None when keys are switched off)."""
    state = get_state(request)
    if not state.config.require_api_key:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    client = request.client.host if request.client is not None else ""
    return state.check_key(key.strip(), client=client)


def key_roles(*roles: str) -> Callable[..., KeyIdentity | None]:
    """A FastAPI dependency admitting keys that act as one of `roles` (admin keys always); others get 403.

    Example: `@router.get("/metrics", dependencies=[Depends(key_roles("engineer"))])`.
    """

    def check(key: KeyIdentity | None = Depends(require_key)) -> KeyIdentity | None:
        if key is not None and key.role != "admin" and key.role not in roles:
            allowed = ", ".join((*roles, "admin"))
            raise PermissionDenied(f"API key {key.name!r} acts as {key.role}; this route admits {allowed} keys")
        return key

    return check
