"""The HTTP contract on the real server: every status documented with the one error schema, schemathesis finds
no server error and no conformance fault, and the request-size edges are refused cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

FUZZ_EXAMPLES = 25  # per operation and phase; the run takes ~30-60 s on a busy 2-core machine


def test_every_operation_documents_its_error_answers(contract_server) -> None:  # type: ignore[no-untyped-def]
    spec = httpx.get(f"{contract_server.url}/openapi.json").json()
    operations = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    assert {("/metrics", "get"), ("/v1/completions", "post"), ("/v1/chat/completions", "post")} <= set(operations)
    assert ("/v1/finance/score", "post") in operations  # domain plugin routes are covered too
    for (path, _), op in operations.items():
        responses = op["responses"]
        expected = {"401", "403", "413", "429", "503"} | ({"400", "422"} if "requestBody" in op else set())
        if path.startswith("/v1/"):
            # adapter loading and unloading generate nothing, so they have no generation deadline (504)
            expected |= {"404"} if path.startswith("/v1/adapters") else {"404", "504"}
        assert expected <= set(responses), (path, sorted(responses))
        for status in expected:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)
        for status in ("429", "503"):
            assert responses[status]["headers"]["Retry-After"]["required"] is True
        assert op["security"] == [{"bearer": []}]
    assert "text/plain" in operations[("/metrics", "get")]["responses"]["200"]["content"]
    components = spec["components"]
    assert components["schemas"]["ErrorResponse"]["required"] == ["error"]
    assert set(components["schemas"]["ErrorDetail"]["properties"]) == {"message", "type", "code"}
    assert "HTTPValidationError" not in components["schemas"]
    assert "Allow" in components["responses"]["MethodNotAllowed"]["headers"]
    assert components["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_schemathesis_finds_no_fault(contract_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every operation, every phase (examples, coverage, fuzzing, stateful), every check schemathesis has."""
    # 504 is the one 5xx the contract expects: the fuzzer sends request_timeout_s as short as 5e-324 s (the schema
    # allows any positive deadline), which no model meets, and the documented answer to a missed deadline is 504.
    # Every other 5xx still fails the run.
    config = tmp_path / "schemathesis.toml"
    config.write_text('[checks.not_a_server_error]\nexpected-statuses = ["2xx", "3xx", "4xx", "504"]\n')
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        f"{contract_server.url}/openapi.json",
        "--checks", "all", "--max-examples", str(FUZZ_EXAMPLES), "--seed", "1", "--workers", "1",
        "--header", f"Authorization: Bearer {contract_server.key}", "--request-timeout", "30", "--no-color",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    tested = re.search(r"Selected: (\d+)/(\d+)", report)
    assert tested is not None and tested.group(1) == tested.group(2) and int(tested.group(1)) >= 4, report[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None and int(counts.group(1)) >= 100, report[-2000:]


def _post(server, path: str, raw: bytes | object, **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = server.headers | {"Content-Type": "application/json"} | headers
    return httpx.post(f"{server.url}{path}", content=raw, headers=headers, timeout=60)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b'{"model": "tiny", "prompt": "' + b"a" * 1_000_000 + b'"}', 413, "exceeds the 262144 byte limit"),
        (b'{"model": "tiny", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested"),
        (b'{"model": "tiny", "prompt": "' + b'{"a":' * 20_000 + b'"}', 400, "not valid JSON"),
        (b'{"model": "tiny", "prompt": "\xc3\x28 \xed\xa0\x80"}', 400, "UTF-8"),
        (b'{"model": "tiny", "prompt": ["' + b'", "'.join([b"x"] * 65) + b'"]}', 422, "prompt"),
    ],
    ids=["1MB-prompt", "deeply-nested", "nested-unclosed", "invalid-utf8", "too-many-prompts"],
)
def test_request_size_edges(contract_server, raw: bytes, status: int, words: str) -> None:  # type: ignore[no-untyped-def]
    response = _post(contract_server, "/v1/completions", raw)
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == status and words in error["message"], error


def test_deep_nesting_inside_a_domain_route(contract_server) -> None:  # type: ignore[no-untyped-def]
    raw = b'{"transactions": [{"a": ' + b'{"b":' * 5000 + b"1" + b"}" * 5000 + b"}]}"
    response = _post(contract_server, "/v1/finance/score", raw)
    assert response.status_code == 400 and "nested" in response.json()["error"]["message"]


def test_a_chunked_body_over_the_limit_is_cut_off(contract_server) -> None:  # type: ignore[no-untyped-def]
    """Without Content-Length the server counts what arrives and stops reading at the limit (no memory growth)."""
    pulled = 0

    def body():  # type: ignore[no-untyped-def]  # 50 MB, streamed with Transfer-Encoding: chunked
        nonlocal pulled
        yield b'{"model": "tiny", "prompt": "'
        for _ in range(800):
            pulled += 65536
            yield b"a" * 65536
        yield b'"}'

    try:
        response = _post(contract_server, "/v1/completions", body())
    except httpx.TransportError:  # the server may close before the client is done writing; also a refusal
        response = None
    if response is not None:
        assert response.status_code == 413, response.text[:300]
        assert "sent without Content-Length" in response.json()["error"]["message"]
    assert pulled < 20_000_000  # the rest of the 52 MB was never read (socket buffers hold a few MB)
    assert _post(contract_server, "/v1/completions", b'{"model": "tiny", "prompt": "hi", "max_tokens": 2}').is_success


def test_undeclared_methods_get_405_with_allow(contract_server) -> None:  # type: ignore[no-untyped-def]
    for method, path, allow in [("TRACE", "/v1/completions", "POST"), ("GET", "/v1/chat/completions", "POST"),
                                ("DELETE", "/metrics", "GET")]:  # fmt: skip
        response = httpx.request(method, f"{contract_server.url}{path}", headers=contract_server.headers)
        assert response.status_code == 405 and response.headers["Allow"] == allow, (method, path)
        assert response.json()["error"]["code"] == 405
