"""Generation on ONNX Runtime GenAI: load named model folders, run one static batch with KV cache per call.

The dynamic batcher (core/serving/batcher.py) decides which requests share a batch; this module only runs them.
Rows are right-padded with the tokenizer's pad id, which onnxruntime-genai turns into the attention mask, so a
greedy row gives the same tokens alone or in a batch (tests/integration/serving asserts it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FinmedError, ValidationError


def import_genai() -> Any:
    """onnxruntime_genai, imported after onnxruntime (whose shared library it needs loaded first)."""
    import onnxruntime  # noqa: F401
    import onnxruntime_genai as og

    return og


@dataclass(frozen=True)
class Constraint:
    """Constrained output: `regex` (a pattern the whole output matches) or `choice` (one of the listed strings).

    Both run through onnxruntime-genai's guidance (llguidance) as a regex; a choice list becomes an escaped
    alternation.
    """

    kind: str
    value: str | tuple[str, ...]

    def as_regex(self) -> str:
        """The regex handed to the runtime's guidance."""
        if self.kind == "regex":
            return str(self.value)
        import re

        return "(" + "|".join(re.escape(c) for c in self.value) + ")"


@dataclass(eq=False)
class GenRequest:
    """One request inside a batch: inputs, sampling, and the result fields the engine fills in.

    Attributes:
        prompt_ids: (prompt_len,) int32 token ids.
        on_text: called from the engine thread with each new piece of text (streaming); None to skip.
        on_finish: called from the engine thread as soon as this row is finished.
        cancelled: set by the server when the client went away or the request timed out.
    """

    prompt_ids: np.ndarray
    max_new_tokens: int
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    constraint: Constraint | None = None
    on_text: Callable[[str], object] | None = None
    on_finish: Callable[[], object] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # filled in by the engine
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    token_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.constraint is not None:
            self.min_new_tokens = 0  # the constraint decides where the output ends

    def batch_key(self) -> tuple[Any, ...]:
        """Requests may share a batch only when their search options and constraint are the same."""
        sampling = (self.temperature, self.top_p, self.top_k, self.seed) if self.do_sample else ()
        # min_tokens is a testing/benchmark aid: rows that set it share a batch, and the batch's largest applies
        # (each row still stops at its own max_new_tokens), so requests without it never get EOS suppressed.
        # Rows of a static batch all step until the longest is done, so lengths are bucketed (powers of two):
        # an 8-token score never rides along a 60-token draft, computing 52 wasted steps.
        length_bucket = 1 << max(3, (self.max_new_tokens - 1).bit_length())
        return (self.do_sample, sampling, self.constraint, self.min_new_tokens > 0, length_bucket)


class _Row:
    """Per-row decoding state: incremental text, held-back tail for stop strings, finish detection."""

    def __init__(self, req: GenRequest, tokenizer: Any, eos_ids: set[int]) -> None:
        self.req = req
        self.stream = tokenizer.create_stream()
        self.eos_ids = eos_ids
        self.emitted = 0  # characters of req.text already handed to on_text
        self.hold = max((len(s) for s in req.stop), default=1) - 1

    def push(self, token: int, now: float) -> None:
        req = self.req
        if req.first_token_at is None:
            req.first_token_at = now
        req.token_times.append(now)
        if token in self.eos_ids:
            req.finish_reason = "stop"
            self._flush(final=True)
            return
        req.token_ids.append(token)
        req.text += self.stream.decode(token)
        for stop in req.stop:
            cut = req.text.find(stop)
            if cut >= 0:
                req.text = req.text[:cut]
                req.finish_reason = "stop"
                self._flush(final=True)
                return
        if len(req.token_ids) >= req.max_new_tokens:
            req.finish_reason = "length"
            self._flush(final=True)
            return
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        upto = len(self.req.text) if final else max(self.emitted, len(self.req.text) - self.hold)
        if upto > self.emitted and self.req.on_text is not None:
            self.req.on_text(self.req.text[self.emitted : upto])
        self.emitted = upto
        if final and self.req.on_finish is not None:
            self.req.on_finish()  # answer this row now, while longer rows of the batch keep generating


class LoadedModel:
    """One ONNX Runtime GenAI model folder loaded under a version name."""

    def __init__(self, name: str, folder: Path, *, device: str = "auto") -> None:
        og = import_genai()
        self.name = name
        self.folder = Path(folder)
        rss_before = _rss_bytes()
        started = time.perf_counter()
        config = og.Config(str(self.folder))
        if device == "cuda" or (device == "auto" and og.is_cuda_available()):
            config.clear_providers()
            config.append_provider("cuda")
            self.device = "cuda"
        else:
            self.device = "cpu"
        try:
            self.model = og.Model(config)
        except Exception as exc:  # the runtime raises plain RuntimeError with its own text
            raise FinmedError(f"model {name!r}: cannot load {self.folder}: {str(exc).splitlines()[0]}") from None
        self.tokenizer = og.Tokenizer(self.model)
        self.load_seconds = time.perf_counter() - started
        self.memory_bytes = max(0, _rss_bytes() - rss_before)
        genai = json.loads((self.folder / "genai_config.json").read_text(encoding="utf-8"))
        self.context_length = int(genai["model"]["context_length"])
        eos = genai["model"]["eos_token_id"]
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = int(genai["model"].get("pad_token_id", 0))
        self._og = og

    def encode(self, text: str) -> np.ndarray:
        """(prompt_len,) int32 token ids for `text`."""
        return np.asarray(self.tokenizer.encode(text), dtype=np.int32)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """Render chat messages with the folder's chat template, ending with the assistant's turn."""
        return self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)

    def generate(self, batch: list[GenRequest]) -> None:
        """Run `batch` to completion (or until every row is finished or cancelled), filling each request.

        All requests must share `batch_key()`. Rows are right-padded to the longest prompt.

        Raises:
            ValidationError: when prompt plus max_new_tokens exceeds the model's context length.
        """
        og = self._og
        first = batch[0]
        longest = max(len(r.prompt_ids) for r in batch)
        max_length = longest + max(r.max_new_tokens for r in batch)
        if max_length > self.context_length:
            raise ValidationError(
                f"prompt ({longest} tokens) plus max_tokens exceeds model {self.name!r}'s context of "
                f"{self.context_length} tokens; shorten the prompt or lower max_tokens"
            )
        ids = np.full((len(batch), longest), self.pad_id, dtype=np.int32)  # (batch, longest), right-padded
        for i, req in enumerate(batch):
            ids[i, : len(req.prompt_ids)] = req.prompt_ids
        params = og.GeneratorParams(self.model)
        options: dict[str, Any] = dict(max_length=max_length, batch_size=len(batch), do_sample=first.do_sample)
        if first.min_new_tokens > 0:
            options["min_length"] = longest + max(r.min_new_tokens for r in batch)
        if first.do_sample:
            options.update(temperature=first.temperature, top_p=first.top_p, top_k=first.top_k)
            if first.seed is not None:
                options["random_seed"] = first.seed
        params.set_search_options(**options)
        if first.constraint is not None:
            params.set_guidance("regex", first.constraint.as_regex())
        generator = og.Generator(self.model, params)
        now = time.perf_counter()
        for req in batch:
            req.started_at = now
        rows = [_Row(r, self.tokenizer, self.eos_ids) for r in batch]
        generator.append_tokens(ids)
        while not generator.is_done():
            live = [row for row in rows if row.req.finish_reason is None and not row.req.cancelled.is_set()]
            if not live:
                break
            generator.generate_next_token()
            tokens = generator.get_next_tokens()  # (batch,)
            now = time.perf_counter()
            for i, row in enumerate(rows):
                if row.req.finish_reason is None and not row.req.cancelled.is_set():
                    row.push(int(tokens[i]), now)
        for row in rows:
            if row.req.finish_reason is None and not row.req.cancelled.is_set():
                row.req.finish_reason = "length"
                row._flush(final=True)


def _rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
