"""Request bodies take integers and booleans as the OpenAPI document states them (found by the contract fuzzer)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.serving.schemas import ChatCompletionRequest, CompletionRequest

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "m", "prompt": "hi"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CHAT, "logprobs": 0}, "logprobs"),  # an integer for a boolean
        ({**CHAT, "stream": "yes"}, "stream"),
        ({**CHAT, "max_completion_tokens": True}, "max_completion_tokens"),  # a boolean for an integer
        ({**COMPLETION, "min_tokens": "3"}, "min_tokens"),  # a string for an integer
        ({**COMPLETION, "max_tokens": 2.5}, "max_tokens"),
        ({**COMPLETION, "logprobs": False}, "logprobs"),
        ({**COMPLETION, "score_token_ids": [1, "2"]}, "score_token_ids"),
        ({**CHAT, "temperature": False}, "temperature"),  # a boolean for a number
        ({**CHAT, "top_p": "0.5"}, "top_p"),
    ],
)
def test_wrong_json_types_are_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    model = ChatCompletionRequest if "messages" in body else CompletionRequest
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    assert refused.value.errors()[0]["loc"][0] == field


def test_json_integers_and_numbers_still_pass() -> None:
    body = CompletionRequest.model_validate({**COMPLETION, "n": 1.0, "max_tokens": 8.0, "temperature": 0, "seed": 3})
    assert (body.n, body.max_tokens, body.temperature, body.seed) == (1, 8, 0.0, 3)
    assert isinstance(body.max_tokens, int)
    chat = ChatCompletionRequest.model_validate({**CHAT, "logprobs": True, "top_logprobs": 2, "stream": False})
    assert chat.top_n() == 2
