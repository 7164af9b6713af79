"""The model server's error contract in its OpenAPI document: one error schema, every status a route can answer.

Every error the server sends has the body `{"error": {"message", "type", "code"}}` (OpenAI's shape). FastAPI
documents only 200 and its own 422 schema, so clients generated from the spec cannot handle the rest;
`document_errors` post-processes the generated document instead of decorating each route, so routers added later
(the OpenAI routes, domain plugin routers) are covered without their authors remembering it:

- every operation: 401 (no or unknown key), 403 (the key's role is not admitted), 413 (body over the limit),
  429 (too many invalid keys from the address, or a full queue; `Retry-After`), 503 (models loading or the
  database unavailable; `Retry-After`), and the bearer security scheme;
- an operation with a request body: 400 (not JSON, not UTF-8, a prompt over the model's limit) and 422
  (a field is invalid) with the error schema in place of FastAPI's `HTTPValidationError`;
- statuses a route declares itself (`responses=error_responses(404, 504)`) get the same schema and headers.

405 belongs to no operation (it answers a method a path does not declare); it is documented once as the reusable
response `MethodNotAllowed` with its `Allow` header, which the server always sends (RFC 9110).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

ERROR_SCHEMA_REF = "#/components/schemas/ErrorResponse"


class ErrorDetail(BaseModel):
    """What went wrong, for people (`message`) and for programs (`type`, `code`)."""

    message: str = Field(description="One line naming the field, model or setting and what would fix it.")
    type: str = Field(description="Error kind, e.g. invalid_request_error, unauthorized, queue_full, timeout.")
    code: int = Field(description="The HTTP status code, repeated in the body.")


class ErrorResponse(BaseModel):
    """The body of every error answer of the model server."""

    error: ErrorDetail


RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Whole seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
ALLOW_HEADER: dict[str, Any] = {
    "description": "The methods this path supports (RFC 9110).",
    "required": True,
    "schema": {"type": "string"},
}

DESCRIPTIONS = {
    400: "The body is not JSON or not UTF-8, or a prompt is longer than the model accepts.",
    401: "No API key, or an unknown or revoked one (`Authorization: Bearer <key>`).",
    403: "The API key's role is not admitted by this route.",
    404: "The named model (or other resource) is not served here.",
    405: "The path does not support this method; `Allow` lists the ones it does.",
    409: "The request conflicts with the current state.",
    413: "The request body is larger than the server's limit.",
    422: "A field of the request is invalid; the message names it.",
    429: "Too many invalid API keys from this address, or the model's queue is full; retry after `Retry-After`.",
    503: "Models are still loading or the database is unavailable; retry after `Retry-After`.",
    504: "The generation did not finish within the request's time limit.",
}
RETRY_AFTER_STATUSES = frozenset({429, 503})
EVERY_OPERATION = (401, 403, 413, 429, 503)
WITH_BODY = (400, 422)
GENERATION = (404, 429, 504)  # routes that run a named model: unknown model, full queue, generation timeout


def required_when_true(flag: str, field: str) -> dict[str, Any]:
    """JSON schema (for a request model's `json_schema_extra`): when boolean `flag` is true, `field` is a non-empty
    string. Documents a rule the route still checks at run time, so clients and fuzzers know it."""
    return {
        "if": {"properties": {flag: {"const": True}}, "required": [flag]},
        "then": {"properties": {field: {"type": "string", "minLength": 1}}, "required": [field]},
    }


def error_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of one error status (error schema; `Retry-After`/`Allow` where sent)."""
    entry: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, "Error."),
        "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
    }
    if status in RETRY_AFTER_STATUSES:
        entry["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    if status == 405:
        entry["headers"] = {"Allow": ALLOW_HEADER}
    return entry


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries for route-specific statuses (e.g. `error_responses(404, 504)`).

    `document_errors` fills in the schema and headers; this only declares which statuses the route answers.
    """
    return {status: {"description": DESCRIPTIONS.get(status, "Error.")} for status in statuses}


def _document_operation(operation: dict[str, Any], *, keyed: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    statuses |= set(EVERY_OPERATION) if keyed else {413, 503}
    if "requestBody" in operation:
        statuses |= set(WITH_BODY)
    for status in sorted(statuses):
        responses[str(status)] = error_response(status)
    if keyed:
        operation["security"] = [{"bearer": []}]


def add_error_docs(schema: dict[str, Any], *, keyed: bool = True) -> dict[str, Any]:
    """Document the error answers of every operation in an OpenAPI document (in place; returned for chaining).

    Args:
        schema: the document FastAPI generated.
        keyed: whether the server requires API keys (documents 401/403/429 and the bearer scheme).
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    detail = ErrorDetail.model_json_schema()
    schemas["ErrorDetail"] = detail
    schemas["ErrorResponse"] = {
        "title": "ErrorResponse",
        "description": ErrorResponse.__doc__,
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
        "required": ["error"],
    }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components.setdefault("responses", {})["MethodNotAllowed"] = error_response(405)
    if keyed:
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `finmed serve keys add NAME --role ROLE`.",
        }
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                _document_operation(operation, keyed=keyed)
    return schema


def add_model_examples(schema: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Give the `model` field of every request body the served model names as examples (in place; returned).

    Clients read which names are valid, and a property-based tester (schemathesis) reaches generation with them
    instead of answering 404 "not served" to nearly every generated request.
    """
    if not names:
        return schema
    for body in schema.get("components", {}).get("schemas", {}).values():
        field = body.get("properties", {}).get("model") if isinstance(body, dict) else None
        if isinstance(field, dict) and field.get("type") == "string":
            field["examples"] = list(names)
    return schema


def document_errors(app: FastAPI, *, keyed: bool = True, model_names: list[str] | None = None) -> None:
    """Make `app.openapi()` (and /openapi.json) document every error answer, for every route mounted on `app`,
    with `model_names` (the served models) as the examples of each request's `model` field.

    Call it once after building the app; routes included later are documented too (the document is built on
    first request).
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = add_model_examples(add_error_docs(schema, keyed=keyed), list(model_names or []))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
