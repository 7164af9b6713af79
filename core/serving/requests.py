"""Turn prompt text plus OpenAI/vLLM sampling fields into an engine request, checking the model's limits."""

from __future__ import annotations

from core.errors import ValidationError
from core.serving.batcher import ModelWorker
from core.serving.engine import Constraint, GenRequest
from core.serving.schemas import SamplingFields

DEFAULT_MAX_TOKENS = 16
CHARS_PER_TOKEN = 4  # prompts longer than max_prompt_tokens * this are refused before tokenising


def build_request(worker: ModelWorker, prompt: str, body: SamplingFields, max_tokens: int | None) -> GenRequest:
    """Validate limits and turn prompt text plus sampling fields into an engine request.

    Raises:
        ValidationError: prompt too long, max_tokens over the model's limit, or both options of constraint.
    """
    spec = worker.spec
    if len(prompt) > spec.max_prompt_tokens * CHARS_PER_TOKEN:
        raise ValidationError(
            f"prompt of {len(prompt)} characters is too long for model {spec.name!r} "
            f"(max_prompt_tokens {spec.max_prompt_tokens})"
        )
    ids = worker.model.encode(prompt)
    if len(ids) == 0:
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
    if body.guided_regex and body.guided_choice:
        raise ValidationError("give guided_regex or guided_choice, not both")
    constraint = None
    if body.guided_regex:
        constraint = Constraint("regex", body.guided_regex)
    elif body.guided_choice:
        constraint = Constraint("choice", tuple(body.guided_choice))
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
        constraint=constraint,
    )
