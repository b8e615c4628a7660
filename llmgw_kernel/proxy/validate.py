"""Cheap structural checks of OpenAI requests: a 400 that names the parameter.

Only what the gateway itself relies on is checked, plus the common typed fields; anything
else passes through to the provider untouched (it is the authority on its own API).
"""

from __future__ import annotations

from typing import Any

from .errors import bad_request

_NUMBER = (int, float)
# field -> (accepted types, human description, (min, max) or None)
_CHAT_FIELDS: dict[str, tuple[tuple[type, ...], str, tuple[float, float] | None]] = {
    "stream": ((bool,), "a boolean", None),
    "stream_options": ((dict,), "an object", None),
    "n": ((int,), "an integer", (1, 128)),
    "max_tokens": ((int,), "an integer", (1, 10_000_000)),
    "max_completion_tokens": ((int,), "an integer", (1, 10_000_000)),
    "temperature": (_NUMBER, "a number", (0, 2)),
    "top_p": (_NUMBER, "a number", (0, 1)),
    "presence_penalty": (_NUMBER, "a number", (-2, 2)),
    "frequency_penalty": (_NUMBER, "a number", (-2, 2)),
    "seed": ((int,), "an integer", None),
    "tools": ((list,), "an array", None),
    "response_format": ((dict,), "an object", None),
    "metadata": ((dict,), "an object", None),
    "user": ((str,), "a string", None),
}


def _check_fields(
    body: dict[str, Any], table: dict[str, tuple[tuple[type, ...], str, tuple[float, float] | None]]
) -> None:
    for name, (types, desc, bounds) in table.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (bool in types) != isinstance(value, bool):
            raise bad_request(f"'{name}' must be {desc}, got {type(value).__name__}", param=name, code="invalid_type")
        if bounds and not (bounds[0] <= value <= bounds[1]):  # type: ignore[operator]
            raise bad_request(
                f"'{name}' must be between {bounds[0]:g} and {bounds[1]:g}, got {value}",
                param=name,
                code="invalid_value",
            )


def check_model(body: Any) -> str:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "'model' is required and must be a non-empty string",
            param="model",
            code="missing_required_parameter" if model is None else "invalid_type",
        )
    return model


def check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "'messages' is required and must be a non-empty array", param="messages",
            code="missing_required_parameter" if messages is None else "invalid_value",
        )  # fmt: skip
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request(f"'messages[{i}]' must be an object", param=f"messages[{i}]", code="invalid_type")
        if not isinstance(msg.get("role"), str):
            raise bad_request(
                f"'messages[{i}].role' is required and must be a string",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
    _check_fields(body, _CHAT_FIELDS)
    opts = body.get("stream_options")
    if opts is not None and not body.get("stream"):
        raise bad_request(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options", code="invalid_value"
        )


def check_embeddings(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise bad_request("'input' is required", param="input", code="missing_required_parameter")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise bad_request("'input' must be a string or a non-empty array", param="input", code="invalid_value")
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise bad_request("'metadata' must be an object", param="metadata", code="invalid_type")
