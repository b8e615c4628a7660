"""OpenAI answers → Anthropic Messages answers, for ``POST /v1/messages``: the message
(:func:`to_anthropic_message`), usage, stop reasons and error bodies. Streams:
:class:`.anthropic_stream.AnthropicEvents`. Also the model objects of ``GET /v1/models`` as
the anthropic SDK reads them (:func:`anthropic_models`).
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson

STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# -- messages ------------------------------------------------------------------
def message_id(openai_id: Any) -> str:
    text = openai_id if isinstance(openai_id, str) and openai_id else "gateway"
    return text if text.startswith("msg_") else "msg_" + text


def stop_reason(finish_reason: Any) -> str:
    """OpenAI ``finish_reason`` → Anthropic ``stop_reason`` (unknown or missing: ``end_turn``)."""
    return STOP_REASON.get(finish_reason, "end_turn")


def anthropic_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    """OpenAI usage → Anthropic usage. ``input_tokens`` excludes cache reads and writes, as in
    Anthropic's API (the anthropic provider adds them into ``prompt_tokens``; this undoes it)."""
    u = usage or {}
    details = u.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens") or 0
    write = details.get("cache_creation_tokens") or 0
    return {
        "input_tokens": max((u.get("prompt_tokens") or 0) - read - write, 0),
        "output_tokens": u.get("completion_tokens") or 0,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON arguments as Anthropic's ``input`` object (unparseable: ``{"_raw": ...}``)."""
    try:
        value = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        value = None
    return value if isinstance(value, dict) else {"_raw": arguments}


def to_anthropic_message(resp: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic ``message`` (first choice)."""
    choices = resp.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    if msg.get("refusal"):
        content.append({"type": "text", "text": msg["refusal"]})
    for i, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") or {}
        content.append({
            "type": "tool_use", "id": call.get("id") or f"toolu_{i}", "name": fn.get("name") or "",
            "input": tool_input(fn.get("arguments")),
        })  # fmt: skip
    return {
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model") or "",
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(resp.get("usage")),
    }


# -- errors ----------------------------------------------------------------------------------------------
def error_type(status: int) -> str:
    return ERROR_TYPE.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def anthropic_error(status: int, openai_body: bytes, request_id: str | None = None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}`` for a gateway error body."""
    message = f"HTTP {status}"
    try:
        err = orjson.loads(openai_body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        err = None
    if isinstance(err, dict) and err.get("message"):
        message = str(err["message"])
    out: dict[str, Any] = {"type": "error", "error": {"type": error_type(status), "message": message}}
    if request_id:
        out["request_id"] = request_id
    return out


# -- models ----------------------------------------------------------------------------------------------
def is_anthropic_client(headers: list[tuple[bytes, bytes]]) -> bool:
    """The anthropic SDK sends ``anthropic-version`` on every request (OpenAI's never does)."""
    return any(k == b"anthropic-version" for k, _ in headers)


def anthropic_model(model: dict[str, Any]) -> dict[str, Any]:
    """A route's OpenAI model object as Anthropic's ``ModelInfo``: the route is its display name."""
    created = datetime.datetime.fromtimestamp(int(model.get("created") or 0), datetime.UTC)
    return {"type": "model", "id": model["id"], "display_name": model["id"], "created_at": created.isoformat()}


def anthropic_models(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Anthropic's model list page: every model on one page (``has_more: false``)."""
    data = [anthropic_model(m) for m in models]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}
