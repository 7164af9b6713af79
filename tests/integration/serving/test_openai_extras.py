"""What OpenAI-client users expect, against the real server: /v1/models, the usage chunk, json_schema, logprobs, seed,
and a chat's system turn served from the cached prefix."""

from __future__ import annotations

import json

import httpx
import openai

SYSTEM = "You are a radiology assistant. Write a short impression in plain words, one sentence only, no lists."


def _oa(server) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)


def test_models_lists_every_served_model(server) -> None:  # type: ignore[no-untyped-def]
    listed = _oa(server).models.list()
    assert {m.id for m in listed.data} == {"tiny", "tiny-solo", "tiny-busy", "tiny-one"}
    assert all(m.object == "model" and m.owned_by == "finmed" for m in listed.data)
    assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 401  # behind the API keys


def test_openai_client_gets_a_usage_chunk_when_it_asks(server) -> None:  # type: ignore[no-untyped-def]
    client = _oa(server)
    messages = [{"role": "user", "content": "Summarise: no acute abnormality."}]
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=6, temperature=0, stream=True,
            stream_options={"include_usage": True}, extra_body={"min_tokens": 6},
        )
    )  # fmt: skip
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 6 and last.usage.prompt_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + 6
    assert all(c.choices for c in chunks[:-1])
    text = list(client.completions.create(model="tiny", prompt="Impression:", max_tokens=4, stream=True,
                                          stream_options={"include_usage": True}))  # fmt: skip
    assert text[-1].choices == [] and text[-1].usage is not None


def test_response_format_json_schema_logprobs_and_seed(server) -> None:  # type: ignore[no-untyped-def]
    client = _oa(server)
    schema = {
        "type": "object",
        "properties": {"urgent": {"type": "boolean"}, "level": {"type": "integer", "minimum": 0, "maximum": 5}},
        "required": ["urgent", "level"],
        "additionalProperties": False,
    }
    done = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Rate it."}], max_tokens=40, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "rating", "schema": schema, "strict": True}},
    )  # fmt: skip
    answer = json.loads(done.choices[0].message.content)
    assert set(answer) == {"urgent", "level"} and isinstance(answer["urgent"], bool)

    scored = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5, temperature=0,
        logprobs=True, top_logprobs=2, extra_body={"min_tokens": 5},
    )  # fmt: skip
    content = scored.choices[0].logprobs.content
    assert len(content) == 5 and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)
    assert "".join(t.token for t in content).strip("\ufffd") in scored.choices[0].message.content  # byte pieces

    def sample(seed: int) -> str:
        return client.completions.create(
            model="tiny-solo", prompt="Impression:", max_tokens=10, temperature=1.0, seed=seed,
            extra_body={"min_tokens": 10, "top_k": 0},
        ).choices[0].text  # fmt: skip

    assert sample(11) == sample(11)


def test_system_turn_is_computed_once(server) -> None:  # type: ignore[no-untyped-def]
    """tiny-solo runs requests alone: the second chat with the same system turn reuses its cached prefix, and the
    greedy answer is the one a full prefill gives (tiny batches the request with nobody else, no prefix)."""
    client = _oa(server)
    answers, cached = [], []
    for question in ("Findings: clear lungs.", "Findings: small effusion.", "Findings: clear lungs."):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        done = client.chat.completions.create(model="tiny-solo", messages=messages, max_tokens=10, temperature=0)
        answers.append(done.choices[0].message.content)
        cached.append(done.usage.prompt_tokens_details.cached_tokens)
    assert cached[1] > 0 and cached[2] > 0
    assert answers[0] == answers[2]
    full = httpx.post(
        f"{server.url}/v1/completions", headers=server.headers, timeout=60,
        json={"model": "tiny", "prompt": _render(server, SYSTEM, "Findings: small effusion."), "max_tokens": 10,
              "temperature": 0},
    ).json()  # fmt: skip
    assert full["choices"][0]["text"] == answers[1]


def _render(server, system: str, question: str) -> str:  # type: ignore[no-untyped-def]
    worker = server.app.state.serving.workers["tiny"]
    return worker.model.chat_prompt([{"role": "system", "content": system}, {"role": "user", "content": question}])
