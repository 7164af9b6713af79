"""Turn prompt text plus OpenAI/vLLM sampling fields into an engine request, checking the model's limits."""

from __future__ import annotations

import json
from typing import Any

from core.errors import ValidationError
from core.serving.batcher import AdapterWorker, ModelWorker
from core.serving.engine import MIN_PREFIX_TOKENS
from core.serving.gen_request import Constraint, GenRequest
from core.serving.schemas import SamplingFields, SchemaFormat

DEFAULT_MAX_TOKENS = 16
CHARS_PER_TOKEN = 4  # prompts longer than max_prompt_tokens * this are refused before tokenising


def _json(schema: dict[str, Any] | str, where: str) -> Constraint:
    try:
        return Constraint.json(schema)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{where}: not valid JSON ({exc.msg})") from None
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def constraint_of(body: SamplingFields) -> Constraint | None:
    """The output constraint a request asks for: guided_regex / guided_choice / guided_json / guided_grammar (vLLM)
    or response_format json_schema / json_object (OpenAI); at most one.

    Raises:
        ValidationError: more than one constraint, or a json_schema format without its schema.
    """
    asked: list[Constraint] = []
    if body.guided_regex:
        asked.append(Constraint("regex", body.guided_regex))
    if body.guided_choice:
        asked.append(Constraint("choice", tuple(body.guided_choice)))
    if body.guided_json is not None:
        asked.append(_json(body.guided_json, "guided_json"))
    if body.guided_grammar:
        asked.append(Constraint("lark_grammar", body.guided_grammar))
    fmt = body.response_format
    if isinstance(fmt, SchemaFormat):
        asked.append(_json(fmt.json_schema.schema_, "response_format.json_schema.schema"))
    elif fmt is not None and fmt.type == "json_object":
        asked.append(Constraint.json({"type": "object"}))
    if len(asked) > 1:
        raise ValidationError(
            "give one of guided_regex, guided_choice, guided_json, guided_grammar or response_format, not several"
        )
    return asked[0] if asked else None


def build_request(
    worker: ModelWorker | AdapterWorker,
    prompt: str,
    body: SamplingFields,
    max_tokens: int | None,
    *,
    cache_prefix: str | None = None,
) -> GenRequest:
    """Validate limits and turn prompt text plus sampling fields into an engine request (for the worker's adapter,
    if it serves one; a soft prompt's virtual tokens go in front).

    Args:
        cache_prefix: the shared leading text of the prompt (e.g. the rendered system turn); `body.cache_prefix`
            wins when both are given.

    Raises:
        ValidationError: prompt too long, max_tokens over the model's limit, or several constraints.
    """
    spec = worker.spec
    if len(prompt) > spec.max_prompt_tokens * CHARS_PER_TOKEN:
        raise ValidationError(
            f"prompt of {len(prompt)} characters is too long for model {spec.name!r} "
            f"(max_prompt_tokens {spec.max_prompt_tokens})"
        )
    ids = worker.model.encode_prompt(prompt)
    if len(ids) == len(worker.model.prefix_ids):
        raise ValidationError("prompt is empty; send at least one character")
    if len(ids) > spec.max_prompt_tokens:
        raise ValidationError(f"prompt has {len(ids)} tokens; model {spec.name!r} accepts {spec.max_prompt_tokens}")
    new = max_tokens or DEFAULT_MAX_TOKENS
    if new > spec.max_new_tokens_limit:
        raise ValidationError(f"max_tokens {new} exceeds model {spec.name!r}'s limit of {spec.max_new_tokens_limit}")
    if len(ids) + new > worker.model.context_length:
        raise ValidationError(
            f"prompt ({len(ids)} tokens) + max_tokens ({new}) exceeds the context of {worker.model.context_length}"
        )
    shared = body.cache_prefix or cache_prefix
    prefix_len = worker.model.shared_prefix_len(ids, shared) if shared and prompt.startswith(shared) else 0
    if prefix_len == 0 and len(worker.model.prefix_ids) >= MIN_PREFIX_TOKENS:
        prefix_len = len(worker.model.prefix_ids)  # the virtual tokens are shared by every request
    vocab_ids = body.score_token_ids or []
    vocab = worker.model.vocab_size
    if any(t < 0 or (vocab and t >= vocab) for t in vocab_ids):
        raise ValidationError(f"score_token_ids: token ids are between 0 and the vocabulary size {vocab}")
    top = body.top_n()
    return GenRequest(
        prompt_ids=ids,
        max_new_tokens=new,
        min_new_tokens=min(body.min_tokens, new),
        stop=body.stop_list(),
        do_sample=body.temperature > 0,
        temperature=body.temperature or 1.0,
        top_p=body.top_p,
        top_k=body.top_k,
        seed=body.seed,
        constraint=constraint_of(body),
        prefix_len=prefix_len,
        logprobs=top is not None,
        top_logprobs=top or 0,
        score_token_ids=tuple(vocab_ids),
        adapter=worker.adapter,
    )
