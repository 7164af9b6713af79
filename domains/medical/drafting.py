"""Drafting: a study -> similar priors -> prompt -> the serving layer -> a draft impression with its latency.

Generation goes only through core.serving: in-process via `ServingState.generate` (its request building, batcher,
limits and metrics) on an exported model folder, or over HTTP via `core.serving.client.ServingClient` against a
running `finmed serve`. Requests are sent concurrently (at most `concurrency` in flight) so the batcher can group
them; each draft's latency is end to end (prompt building through the finished answer).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import NotFoundError
from domains.medical.ingest import Report
from domains.medical.labeler import label_report
from domains.medical.prompts import Prior, build_messages, clean_draft

MAX_NEW_TOKENS = 96
STOP = ["\n\n", "<|im_end|>"]


@dataclass
class Draft:
    """One drafted impression.

    Attributes:
        report: the study it was drafted for; prompt: the templated prompt exactly as sent (PHI-masked).
        text: the cleaned impression; labels: the labeler's findings in it; latency_ms: end to end.
        priors: ids of the prior reports shown as context.
    """

    report: Report
    prompt: str
    text: str
    latency_ms: float
    labels: dict[str, str] = field(default_factory=dict)
    priors: list[str] = field(default_factory=list)


class InProcessEngine:
    """An exported ONNX Runtime GenAI folder served in-process by core.serving.state.ServingState.

    Args:
        folder: the exported folder (genai_config.json and the Hugging Face tokenizer files inside).
        name: the model version name requests use.
        max_batch_size: the batcher's batch limit.
    """

    def __init__(self, folder: Path, *, name: str = "medical", max_batch_size: int = 8, device: str = "cpu") -> None:
        from transformers import AutoTokenizer

        from core.serving.config import ModelSpec, ServeConfig
        from core.serving.state import ServingState

        folder = Path(folder)
        if not (folder / "genai_config.json").is_file():
            raise NotFoundError(f"{folder} is not an exported model folder (no genai_config.json): export it first")
        spec = ModelSpec(name=name, path=folder, max_batch_size=max_batch_size, max_new_tokens_limit=256,
                         max_prompt_tokens=4096, max_wait_ms=5.0)  # fmt: skip
        self.state = ServingState(
            config=ServeConfig(models=[spec], require_api_key=False, device=device),  # type: ignore[arg-type]
            models_dir=folder.parent,
            engine=None,
        )
        self.state.load_models()
        if not self.state.ready:
            raise NotFoundError(f"model {folder} could not be loaded: {self.state.load_error}")
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def render(self, messages: list[dict[str, str]]) -> str:
        """Messages as the model's chat template renders them, ready for the answer."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def agenerate(self, prompt: str, max_tokens: int) -> str:
        """One greedy completion through ServingState.generate."""
        done = await self.state.generate(self.name, prompt, max_tokens=max_tokens, temperature=0.0, stop=STOP)
        return str(done.text)

    def close(self) -> None:
        """Stop the model worker."""
        self.state.close()


class HttpEngine:
    """A model served by `finmed serve`, through core.serving.client.ServingClient.

    Args:
        base_url, api_key: the server; model: the served version name; tokenizer_dir: its tokenizer (the
        exported folder) for the chat template.
    """

    def __init__(self, base_url: str, api_key: str, *, model: str, tokenizer_dir: Path) -> None:
        from transformers import AutoTokenizer

        from core.serving.client import ServingClient

        self.client = ServingClient(base_url, api_key)
        self.name = model
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    def render(self, messages: list[dict[str, str]]) -> str:
        """See InProcessEngine.render."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def agenerate(self, prompt: str, max_tokens: int) -> str:
        """One greedy completion over HTTP (the blocking client runs in a thread)."""
        done = await asyncio.to_thread(
            self.client.complete, self.name, prompt, max_tokens=max_tokens, temperature=0.0, stop=STOP
        )
        return done.text

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


class ServedEngine:
    """A model already loaded by the running model server (for routes such as POST /v1/medical/draft).

    Args:
        state: the server's core.serving.state.ServingState; name: the served version name.
    """

    def __init__(self, state: Any, name: str) -> None:
        from transformers import AutoTokenizer

        self.state, self.name = state, name
        self.tokenizer = AutoTokenizer.from_pretrained(str(state.worker(name).model.folder))

    def render(self, messages: list[dict[str, str]]) -> str:
        """See InProcessEngine.render."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def agenerate(self, prompt: str, max_tokens: int) -> str:
        """See InProcessEngine.agenerate."""
        done = await self.state.generate(self.name, prompt, max_tokens=max_tokens, temperature=0.0, stop=STOP)
        return str(done.text)

    def close(self) -> None:
        """Nothing to release: the server owns the model."""


async def adraft(
    engine: Any,
    reports: list[Report],
    priors: list[list[Prior]],
    *,
    concurrency: int = 1,
    max_tokens: int = MAX_NEW_TOKENS,
) -> list[Draft]:
    """Draft `reports` (with their priors) on a running event loop, at most `concurrency` requests in flight."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(report: Report, context: list[Prior]) -> Draft:
        async with gate:
            started = time.perf_counter()
            prompt = engine.render(build_messages(report, context))
            text = clean_draft(await engine.agenerate(prompt, max_tokens))
            latency = (time.perf_counter() - started) * 1000.0
        return Draft(report, prompt, text, latency, label_report(text), [p.report_id for p in context])

    return list(await asyncio.gather(*(one(r, p) for r, p in zip(reports, priors, strict=True))))


def draft_reports(
    engine: Any,
    reports: list[Report],
    *,
    similar: Any = None,
    k_similar: int = 0,
    concurrency: int = 1,
    max_tokens: int = MAX_NEW_TOKENS,
    on_done: Any = None,
) -> list[Draft]:
    """Draft an impression for each study, in order.

    Args:
        engine: InProcessEngine or HttpEngine.
        reports: studies with findings.
        similar: a similar.PriorReports for context (None: no priors).
        k_similar: priors per prompt.
        concurrency: requests in flight at once.
        on_done: called with the number of drafts finished after each chunk (progress bars).
    """
    out: list[Draft] = []
    chunk = max(1, concurrency) * 4
    for start in range(0, len(reports), chunk):
        part = reports[start : start + chunk]
        priors = [similar.similar(r, k_similar) if similar is not None else [] for r in part]
        out += asyncio.run(adraft(engine, part, priors, concurrency=concurrency, max_tokens=max_tokens))
        if on_done is not None:
            on_done(len(part))
    return out
