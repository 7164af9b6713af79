"""Request bodies of the OpenAI-compatible routes (the subset finmed serves, plus vLLM's guided_* extensions)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Constraints are declared as types (not only checked in validators) so the OpenAPI document states them.
StopString = Annotated[str, Field(min_length=1, max_length=64)]


class SamplingFields(BaseModel):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100, description="Model version name.")
    max_tokens: int | None = Field(None, ge=1, description="New tokens to generate at most.")
    temperature: float = Field(1.0, ge=0, le=2, description="0 means greedy.")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(50, ge=0, description="finmed/vLLM extension.")
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
    stop: StopString | Annotated[list[StopString], Field(max_length=4)] | None = Field(
        None, description="Up to 4 stop strings of 1-64 characters."
    )
    stream: bool = False
    seed: int | None = None
    min_tokens: int = Field(0, ge=0, description="vLLM extension: never stop before this many tokens.")
    guided_regex: str | None = Field(None, max_length=2000, description="vLLM extension: output matches regex.")
    guided_choice: list[str] | None = Field(None, min_length=1, max_length=100, description="Output is one of.")
    user: str | None = Field(None, max_length=256)
    request_timeout_s: float | None = Field(
        None, gt=0, le=3600, description="finmed extension: answer 504 sooner than the model's timeout_s."
    )

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

    def stop_list(self) -> tuple[str, ...]:
        """Stop strings as a tuple (empty when none)."""
        return tuple(self.stop or ())  # type: ignore[arg-type]


class CompletionRequest(SamplingFields):
    """POST /v1/completions."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=64)] = Field(
        description="Prompt text, or a list of 1-64 prompts (one choice each)."
    )
    echo: bool = False

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
