"""What one generation request is: its prompt, sampling, output constraint and adapter, and the fields the engine
fills in as it decodes (core/serving/engine.py runs it; core/serving/requests.py builds it from an HTTP body)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ValidationError

GUIDANCE_KINDS = ("regex", "choice", "json_schema", "lark_grammar")


@dataclass(frozen=True)
class Constraint:
    """Constrained output, decoded under onnxruntime-genai's guidance (llguidance).

    `kind` is regex (the whole output matches `value`), choice (one of the strings in `value`), json_schema (a JSON
    document valid against the schema text in `value`) or lark_grammar.
    """

    kind: str
    value: str | tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in GUIDANCE_KINDS:
            raise ValidationError(f"unknown constraint kind {self.kind!r}: choose one of {', '.join(GUIDANCE_KINDS)}")

    @classmethod
    def json(cls, schema: dict[str, Any] | str) -> Constraint:
        """A json_schema constraint writing compact JSON (llguidance's whitespace_flexible off, as OpenAI's is)."""
        parsed = json.loads(schema) if isinstance(schema, str) else dict(schema)
        if not isinstance(parsed, dict):
            raise ValidationError("a JSON schema is a JSON object")
        parsed.setdefault("x-guidance", {"whitespace_flexible": False})
        return cls("json_schema", json.dumps(parsed))

    def guidance(self) -> tuple[str, str]:
        """(guidance type, grammar text) as `GeneratorParams.set_guidance` takes them."""
        if self.kind == "choice":
            return "regex", "(" + "|".join(re.escape(c) for c in self.value) + ")"
        return self.kind, str(self.value)


# Constrained requests run alone, never in a static batch with others. onnxruntime-genai 0.18's guidance logits
# processor keeps one grammar matcher per row and, once a row's grammar has accepted EOS while other rows are still
# decoding, still asks that matcher for a mask on the next step; the matcher raises "compute_mask() called after
# stop" and the whole batch fails (constrained answers of different lengths in one batch reproduce it:
# tests/unit/core/serving/test_engine.py). Alone they cost little on 2 cores, where batching adds about
# 1.2x (bench/results/serve.md), and each can take the cached-prefix path.


@dataclass(eq=False)
class GenRequest:
    """One request: inputs, sampling, and the result fields the engine fills in.

    Attributes:
        prompt_ids: (prompt_len,) int32 token ids.
        prefix_len: leading prompt tokens shared with other requests (a system turn); > 0 lets the request reuse a
            cached prefix when it runs alone.
        logprobs: record each generated token's log-probability (and the `top_logprobs` best alternatives).
        score_token_ids: token ids whose log-probabilities at the first generated position are recorded in
            `first_scores` (the finance level digits).
        on_text: called from the engine thread with each new piece of text (streaming); None to skip.
        on_finish: called from the engine thread as soon as this row is finished.
        cancelled: set by the server when the client went away or the request timed out.
        adapter: the LoRA adapter (loaded on this base, `LoadedModel.load_adapter`) active for this request; None
            for the base model itself.
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
    prefix_len: int = 0
    logprobs: bool = False
    top_logprobs: int = 0
    score_token_ids: tuple[int, ...] = ()
    adapter: str | None = None
    on_text: Callable[[str], object] | None = None
    on_finish: Callable[[], object] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # filled in by the engine
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    cached_tokens: int = 0
    token_logprobs: list[float] = field(default_factory=list)
    top: list[dict[int, float]] = field(default_factory=list)
    first_scores: np.ndarray | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    token_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.constraint is not None:
            self.min_new_tokens = 0  # the constraint decides where the output ends

    @property
    def wants_logits(self) -> bool:
        """True when the decode loop must read the logits (logprobs or first-position scores)."""
        return self.logprobs or bool(self.score_token_ids)

    def batch_key(self) -> tuple[Any, ...]:
        """Requests may share a batch only when their adapter, search options and constraint are the same."""
        sampling = (self.temperature, self.top_p, self.top_k, self.seed) if self.do_sample else ()
        # min_tokens is a testing/benchmark aid: rows that set it share a batch, and the batch's largest applies
        # (each row still stops at its own max_new_tokens), so requests without it never get EOS suppressed.
        # Rows of a static batch all step until the longest is done, so lengths are bucketed (powers of two):
        # an 8-token score never rides along a 60-token draft, computing 52 wasted steps.
        length_bucket = 1 << max(3, (self.max_new_tokens - 1).bit_length())
        return (self.adapter, self.do_sample, sampling, self.constraint, self.min_new_tokens > 0, length_bucket)
