"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``) and the list of supported routes
that 404 and 405 answers name — both generated from the app's route table
(``app.ROUTES`` and ``app.TEMPLATES``), so neither can drift from what is served.

Each route needs an entry in :data:`DESCRIPTIONS` (a summary and whether it streams);
:func:`document` raises ``KeyError`` for a route without one, which the tests catch.
The admin API (``/admin/...``, operators only, documented in keys.md) is not part of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .. import __version__


class Description(NamedTuple):
    summary: str
    tag: str
    streams: bool = False  # answers text/event-stream when the body says "stream": true


DESCRIPTIONS: dict[str, Description] = {
    "/v1/chat/completions": Description("OpenAI chat completions", "OpenAI", True),
    "/chat/completions": Description("OpenAI chat completions (unversioned alias)", "OpenAI", True),
    "/v1/completions": Description("OpenAI legacy text completions", "OpenAI", True),
    "/completions": Description("OpenAI legacy text completions (unversioned alias)", "OpenAI", True),
    "/v1/responses": Description("OpenAI Responses API", "OpenAI", True),
    "/responses": Description("OpenAI Responses API (unversioned alias)", "OpenAI", True),
    "/v1/embeddings": Description("OpenAI embeddings", "OpenAI"),
    "/embeddings": Description("OpenAI embeddings (unversioned alias)", "OpenAI"),
    "/v1/models": Description("The routes of the live policy, as models", "OpenAI"),
    "/models": Description("The routes of the live policy (unversioned alias)", "OpenAI"),
    "/v1/models/{model}": Description("One route of the live policy, as a model", "OpenAI"),
    "/models/{model}": Description("One route of the live policy (unversioned alias)", "OpenAI"),
    "/v1/messages": Description("Anthropic Messages API", "Anthropic", True),
    "/v1/messages/count_tokens": Description("Anthropic token counting, answered by the gateway", "Anthropic"),
    "/v1/llmgw/key": Description("The presenting virtual key's settings and spend", "llmgw"),
    "/v1/llmgw/feedback": Description("Feedback on a served cache hit, by request id", "llmgw"),
    "/health": Description("Readiness and status report", "llmgw"),
    "/health/ready": Description("Readiness and status report", "llmgw"),
    "/health/live": Description("Liveness", "llmgw"),
    "/metrics": Description("Prometheus metrics", "llmgw"),
    "/openapi.json": Description("This document", "llmgw"),
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def route_lines(routes: Mapping[str, Iterable[str]]) -> list[str]:
    """``"POST /v1/chat/completions"``, ... for a {path: methods} table, in table order."""
    return [f"{method} {path}" for path, methods in routes.items() for method in methods]


def _operation(path: str, method: str, desc: Description) -> dict[str, Any]:
    ok: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if desc.streams:
        ok["text/event-stream"] = {"schema": {"type": "string"}}
    if path == "/metrics":
        ok = {"text/plain": {"schema": {"type": "string"}}}
    op: dict[str, Any] = {
        "summary": desc.summary,
        "tags": [desc.tag],
        "operationId": (method.lower() + path.replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")),
        "responses": {
            "200": {"description": "OK", "content": ok},
            "default": {
                "description": "An error in the API's format",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    if method == "POST":
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    return op


def document(routes: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a {path: methods} route table."""
    paths: dict[str, Any] = {}
    for path, methods in routes.items():
        desc = DESCRIPTIONS[path]
        paths[path] = {method.lower(): _operation(path, method, desc) for method in methods}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmgw",
            "version": __version__,
            "description": "An OpenAI- and Anthropic-compatible LLM gateway. `model` names a route of the live "
            "policy (GET /v1/models lists them).",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{"bearer": []}, {"x-api-key": []}, {}],
    }
