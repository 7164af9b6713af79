"""Request bodies of the OpenAI-compatible routes (the subset finmed serves, plus vLLM's guided_* extensions)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

MAX_TOP_LOGPROBS = 20
# Constraints are declared as types (not only checked in validators) so the OpenAPI document states them.
StopString = Annotated[str, Field(min_length=1, max_length=64)]


def _json_integer(value: Any) -> Any:
    """A JSON Schema integer: an int or an integral float (1.0), never a boolean or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


# Integers and booleans as the OpenAPI document states them: pydantic's lax mode would take `true` or "3" for an
# integer and 0 or "yes" for a boolean, which the document calls invalid (the contract test's fuzzer sends them),
# while JSON Schema does call 1.0 an integer. Booleans are StrictBool; integer and number fields keep their types (so
# their bounds appear in the document as minimum/maximum) and pass through _json_integer / _json_number first.
INTEGER_FIELDS = ("max_tokens", "top_k", "n", "seed", "min_tokens", "top_logprobs")
NUMBER_FIELDS = ("temperature", "top_p", "request_timeout_s")


def _json_number(value: Any) -> Any:
    """A JSON number: an int or a float, never a boolean or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


class JsonSchemaFormat(BaseModel):
    """`response_format.json_schema`: the schema the answer must satisfy (OpenAI structured outputs)."""

    name: str = Field("response", max_length=64)
    schema_: dict[str, Any] = Field(alias="schema", description="A JSON schema.")
    strict: StrictBool | None = None


class PlainFormat(BaseModel):
    """OpenAI `response_format` of type text (no constraint) or json_object (any JSON object)."""

    type: Literal["text", "json_object"]


class SchemaFormat(BaseModel):
    """OpenAI `response_format` of type json_schema: the answer is decoded under `json_schema.schema`."""

    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


# One model per type, told apart by `type`, so the OpenAPI document says json_schema is required with json_schema.
ResponseFormat = Annotated[PlainFormat | SchemaFormat, Field(discriminator="type")]


class StreamOptions(BaseModel):
    """OpenAI `stream_options`: include_usage sends a last chunk with empty choices and the token usage."""

    include_usage: StrictBool = False


# What counts as "given" for each output constraint (core.serving.requests.constraint_of reads them the same way).
_GIVEN = {
    "guided_regex": {"type": "string", "minLength": 1},
    "guided_choice": {"type": "array", "minItems": 1},
    "guided_json": {"not": {"type": "null"}},
    "guided_grammar": {"type": "string", "minLength": 1},
    "response_format": {"type": "object", "properties": {"type": {"enum": ["json_object", "json_schema"]}}},
}


def _one_constraint_at_most(schema: dict[str, Any]) -> None:
    """State in the JSON schema that at most one output constraint is given (the server answers 422 otherwise)."""
    names = list(_GIVEN)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    schema["not"] = {"anyOf": [{"required": [a, b], "properties": {a: _GIVEN[a], b: _GIVEN[b]}} for a, b in pairs]}


class SamplingFields(BaseModel):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_one_constraint_at_most)

    model: str = Field(min_length=1, max_length=100, description="Model version name.")
    max_tokens: int | None = Field(None, ge=1, description="New tokens to generate at most.")
    temperature: float = Field(1.0, ge=0, le=2, description="0 means greedy.")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(50, ge=0, description="finmed/vLLM extension.")
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
    stop: StopString | Annotated[list[StopString], Field(max_length=4)] | None = Field(
        None, description="Up to 4 stop strings of 1-64 characters."
    )
    stream: StrictBool = False
    seed: int | None = None
    min_tokens: int = Field(0, ge=0, description="vLLM extension: never stop before this many tokens.")
    guided_regex: str | None = Field(None, max_length=2000, description="vLLM extension: output matches regex.")
    guided_choice: list[str] | None = Field(None, min_length=1, max_length=100, description="Output is one of.")
    guided_json: dict[str, Any] | str | None = Field(None, description="vLLM extension: output is JSON of this schema.")
    guided_grammar: str | None = Field(None, max_length=20000, description="vLLM extension: a lark grammar.")
    response_format: ResponseFormat | None = None
    stream_options: StreamOptions | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS, description="Alternatives per token.")
    cache_prefix: str | None = Field(
        None,
        max_length=64_000,
        description="finmed extension: the leading part of the prompt shared by many requests (a system turn); its "
        "attention cache is computed once and reused.",
    )
    score_token_ids: list[int] | None = Field(
        None, max_length=64, description="finmed extension: log-probabilities of these tokens at the first position."
    )
    user: str | None = Field(None, max_length=256)
    request_timeout_s: float | None = Field(
        None, gt=0, le=3600, description="finmed extension: answer 504 sooner than the model's timeout_s."
    )

    @field_validator(*INTEGER_FIELDS, mode="before")
    @classmethod
    def _integers(cls, value: Any) -> Any:
        return value if value is None else _json_integer(value)

    @field_validator(*NUMBER_FIELDS, mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return value if value is None else _json_number(value)

    @field_validator("score_token_ids", mode="before")
    @classmethod
    def _token_ids(cls, value: Any) -> Any:
        return [_json_integer(v) for v in value] if isinstance(value, list) else value

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("give at most 4 stop strings of 1-64 characters")
        return stops

    def timeout(self, model_timeout_s: float) -> float:
        """The effective timeout: the model's, or the request's when that is shorter."""
        return min(model_timeout_s, self.request_timeout_s or model_timeout_s)

    def top_n(self) -> int | None:
        """Alternatives per token to report, or None when logprobs were not asked for (in-process callers)."""
        return self.top_logprobs

    def stop_list(self) -> tuple[str, ...]:
        """Stop strings as a tuple (empty when none)."""
        return tuple(self.stop or ())  # type: ignore[arg-type]


NonEmpty = Annotated[str, Field(min_length=1)]


class CompletionRequest(SamplingFields):
    """POST /v1/completions."""

    prompt: NonEmpty | Annotated[list[NonEmpty], Field(min_length=1, max_length=64)] = Field(
        description="Prompt text, or a list of 1-64 prompts (one choice each); a prompt has at least one character."
    )
    echo: StrictBool = False
    logprobs: int | None = Field(None, ge=0, le=5, description="Log-probabilities of this many top tokens.")

    @field_validator("logprobs", mode="before")
    @classmethod
    def _logprobs_integer(cls, value: Any) -> Any:
        return value if value is None else _json_integer(value)

    def top_n(self) -> int | None:
        """Alternatives per token to report, or None when logprobs were not asked for."""
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= 64:
            raise ValueError("give 1-64 prompts")
        return value

    def prompts(self) -> list[str]:
        """The prompt(s) as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(BaseModel):
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(SamplingFields):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_completion_tokens: int | None = Field(None, ge=1, description="Newer name of max_tokens.")
    logprobs: StrictBool | None = Field(None, description="Return each generated token's log-probability.")

    @field_validator("max_completion_tokens", mode="before")
    @classmethod
    def _max_completion_integer(cls, value: Any) -> Any:
        return value if value is None else _json_integer(value)

    def top_n(self) -> int | None:
        """Alternatives per token to report, or None when logprobs were not asked for."""
        return (self.top_logprobs or 0) if self.logprobs else None
