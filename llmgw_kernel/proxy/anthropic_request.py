"""Anthropic Messages request → OpenAI chat request, for ``POST /v1/messages``.

The result is what the one pipeline serves, so routing, fallbacks, logging and metrics are
the same decisions for both APIs (the answer goes back through :mod:`.anthropic_response`).
Top-level fields are a table (:data:`FIELDS`, in the provider engine's vocabulary: map /
build / drop / refuse); fields not in it are refused as Anthropic refuses them ("Extra inputs
are not permitted"), so nothing is ignored silently. Errors are 400s naming the field in
Anthropic's dotted style (``messages.2.content.0.source``).

>>> to_openai_request({"model": "m", "max_tokens": 5, "system": "Be brief.",
...                    "messages": [{"role": "user", "content": "hi"}]})["messages"]
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

from typing import Any

import orjson

from ..providers.engine import BOOL, BUILD, DROP, INT, MAP, NUMBER, OBJECT, REFUSE, STR, Param, Shape, shape_error
from .errors import GatewayError

_TEXT = Shape((dict,), "a text block (an object)", keys={"type": STR, "text": STR})
_BLOCK = Shape((dict,), "a content block (an object)", keys={
    "type": STR, "text": STR, "id": STR, "name": STR, "input": OBJECT, "tool_use_id": STR, "is_error": BOOL,
    "source": Shape((dict,), "an object", keys={"type": STR, "media_type": STR, "data": STR, "url": STR}),
    "content": Shape((str, list), "a string or an array of text blocks", items=_TEXT),
})  # fmt: skip
_MESSAGE = Shape((dict,), "a message (an object)", keys={
    "role": STR, "content": Shape((str, list), "a string or an array of content blocks", items=_BLOCK),
})  # fmt: skip
_TOOL = Shape((dict,), "a tool (an object)", keys={
    "type": STR, "name": STR, "description": STR, "input_schema": OBJECT, "strict": BOOL,
})  # fmt: skip
#: Anthropic's request fields: what each becomes, and (``shape``) the JSON it must be, checked
#: first (a 400 naming the part that does not fit: ``messages.0.content.1.source``)
FIELDS: dict[str, Param] = {
    "model": MAP(note="the route name, as for /v1/chat/completions", shape=STR),
    "messages": BUILD(
        "content blocks → parts; `tool_use` → `tool_calls`; `tool_result` → `tool` messages",
        Shape((list,), "an array of messages", items=_MESSAGE),
    ),
    "max_tokens": MAP(min=1, note="required (400 when missing, as Anthropic)", shape=INT),
    "system": BUILD(
        "→ a leading `system` message (several text blocks joined by a blank line)",
        Shape((str, list), "a string or an array of text blocks", items=_TEXT),
    ),
    "stop_sequences": MAP("stop", shape=Shape((list,), "an array of strings", items=STR)),
    "temperature": MAP(min=0, max=1, note="Anthropic's range", shape=NUMBER),
    "top_p": MAP(min=0, max=1, shape=NUMBER),
    "top_k": DROP("OpenAI chat has no top_k; it narrows sampling and never changes the answer's shape"),
    "metadata": BUILD("`metadata.user_id` → `user`", Shape((dict,), "an object", keys={"user_id": STR})),
    "stream": BUILD("→ `stream` with `stream_options.include_usage`, so `message_delta` carries usage", BOOL),
    "tools": BUILD(
        "client tools → function tools; server tools (web search, code execution, ...) refused",
        Shape((list,), "an array of tools", items=_TOOL),
    ),
    "tool_choice": BUILD(
        "auto/any/tool/none → auto/required/{function}/none; `disable_parallel_tool_use` → `parallel_tool_calls: false`"
    ),
    "output_config": BUILD(
        "`format` (json_schema) → `response_format` json_schema; "
        "`effort` low/medium/high → `reasoning_effort` (xhigh/max refused)"
    ),
    "thinking": BUILD("`disabled` accepted; `enabled`/`adaptive` refused: no OpenAI chat equivalent"),
    "cache_control": DROP("a prompt-caching hint; OpenAI-format targets cache automatically or not at all"),
    "service_tier": DROP("Anthropic capacity tier; the policy chooses the target"),
    "speed": DROP("Anthropic fast mode; the policy chooses the target"),
    "diagnostics": DROP("Anthropic request diagnostics"),
    "user_profile_id": DROP("Anthropic attribution; use `metadata.user_id` (→ `user`)"),
    "workspace_id": DROP("selects a workspace of the caller's Anthropic key; the gateway uses its own keys"),
    "inference_geo": REFUSE("a data-residency requirement the gateway cannot promise for every target"),
    "container": REFUSE("server-side containers are Anthropic-only"),
    "mcp_servers": REFUSE("server-side MCP is Anthropic-only"),
    "context_management": REFUSE("server-side context editing is Anthropic-only"),
}


def invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request")


def to_openai_request(body: Any) -> dict[str, Any]:
    """The OpenAI chat request for an Anthropic Messages request (a 400 naming the field if invalid)."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    if body.get("max_tokens") is None:
        raise invalid("max_tokens: Field required", "max_tokens")
    out: dict[str, Any] = {}
    for name, value in body.items():
        p = FIELDS.get(name)
        if p is None:
            raise invalid(f"{name}: Extra inputs are not permitted", name)
        if p.action == "refuse" and value is not None:
            raise invalid(f"{name}: not supported by this gateway ({p.note})", name)
        if p.action == "drop" or value is None:
            continue
        if p.shape is not None and (err := shape_error(value, p.shape, name, ".{}")) is not None:
            raise invalid(f"{err.param}: Input should be {err.expected}", err.param)
        if p.action != "map":
            continue
        if isinstance(value, (int, float)) and _out_of_range(value, p):
            bound = f"at least {p.min:g}" if p.max is None else f"between {p.min:g} and {p.max:g}"
            raise invalid(f"{name}: must be {bound}, got {value}", name)
        out[p.to or name] = value
    out["messages"] = _system(body.get("system")) + _messages(body.get("messages"))
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list", "tools")
        out["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    _tool_choice(body.get("tool_choice"), out)
    _output_config(body.get("output_config"), out)
    thinking = body.get("thinking")
    if thinking is not None and (not isinstance(thinking, dict) or thinking.get("type") != "disabled"):
        raise invalid(f"thinking: not supported by this gateway ({FIELDS['thinking'].note})", "thinking")
    user = _user_id(body.get("metadata"))
    if user is not None:
        out["user"] = user
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean", "stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _out_of_range(value: float, p: Param) -> bool:
    return (p.min is not None and value < p.min) or (p.max is not None and value > p.max)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise invalid("system: Input should be a string or a list of text blocks", "system")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"system.{i}: only text blocks are allowed in system", f"system.{i}")
        texts.append(block["text"])
    return [{"role": "system", "content": "\n\n".join(texts)}]


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(f"{where}.content: Input should be a string or a list of content blocks", f"{where}.content")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid(f"{where}.content.{j}: Input should be a content block with a type", f"{where}.content.{j}")
    return content


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required", "messages")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise invalid(f"{where}: Input should be an object", where)
        role = msg.get("role")
        if role == "user":
            out.extend(_user_turn(msg.get("content"), where))
        elif role == "assistant":
            out.append(_assistant_turn(msg.get("content"), where))
        else:
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
    return out


def _user_turn(content: Any, where: str) -> list[dict[str, Any]]:
    """``tool`` messages for the turn's tool results (first: OpenAI wants them right after the
    assistant's calls), then one user message with the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.content.{j}"
        if block["type"] == "tool_result":
            tools.append(_tool_result(block, at))
        else:
            parts.append(_part(block, at))
    turn = tools
    if len(parts) == 1 and parts[0]["type"] == "text":
        turn.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        turn.append({"role": "user", "content": parts})
    return turn


def _part(block: dict[str, Any], at: str) -> dict[str, Any]:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": _str(block, "text", at)}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type') or 'image/png'};base64,{_str(source, 'data', at + '.source')}"
        elif source.get("type") == "url":
            url = _str(source, "url", at + ".source")
        else:
            raise invalid(f"{at}.source: image sources must be base64 or url", f"{at}.source")
        return {"type": "image_url", "image_url": {"url": url}}
    raise invalid(f"{at}.type: content block type '{kind}' is not supported by this gateway", f"{at}.type")


def _tool_result(block: dict[str, Any], at: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        pieces = []
        for k, part in enumerate(_blocks(content, at)):
            if part["type"] != "text":
                raise invalid(f"{at}.content.{k}: only text is supported inside tool_result", f"{at}.content.{k}")
            pieces.append(_str(part, "text", f"{at}.content.{k}"))
        text = "".join(pieces)
    if block.get("is_error"):
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": _str(block, "tool_use_id", at), "content": text}


def _assistant_turn(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "text":
            text.append(_str(block, "text", at))
        elif kind == "tool_use":
            args = block.get("input")
            calls.append({
                "id": _str(block, "id", at), "type": "function",
                "function": {"name": _str(block, "name", at), "arguments": orjson.dumps(args or {}).decode()},
            })  # fmt: skip
        elif kind not in ("thinking", "redacted_thinking"):  # the model's own notes: not replayable
            raise invalid(f"{at}.type: content block type '{kind}' is not supported in assistant turns", f"{at}.type")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _str(obj: dict[str, Any], key: str, at: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"{at}.{key}: Field required (a string)", f"{at}.{key}")
    return value


def _tool(tool: Any, i: int) -> dict[str, Any]:
    at = f"tools.{i}"
    if not isinstance(tool, dict):
        raise invalid(f"{at}: Input should be an object", at)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise invalid(f"{at}.type: server tool '{kind}' is not supported by this gateway", f"{at}.type")
    fn: dict[str, Any] = {"name": _str(tool, "name", at)}
    if tool.get("description"):
        fn["description"] = tool["description"]
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise invalid(f"{at}.input_schema: Field required", f"{at}.input_schema")
    fn["parameters"] = schema
    if tool.get("strict") is not None:
        fn["strict"] = bool(tool["strict"])
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        value: Any = "auto"
    elif kind == "any":
        value = "required"
    elif kind == "none":
        value = "none"
    elif kind == "tool":
        value = {"type": "function", "function": {"name": _str(choice, "name", "tool_choice")}}
    else:
        raise invalid("tool_choice: type must be one of auto, any, tool, none", "tool_choice")
    if "tools" not in out:
        return  # OpenAI refuses a tool_choice without tools; without tools there is nothing to choose
    out["tool_choice"] = value
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


_EFFORTS = ("low", "medium", "high")


def _output_config(config: Any, out: dict[str, Any]) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise invalid("output_config: Input should be an object", "output_config")
    for key, value in config.items():
        if value is None:
            continue
        if key == "format":
            if (
                not isinstance(value, dict)
                or value.get("type") != "json_schema"
                or not isinstance(value.get("schema"), dict)
            ):
                raise invalid(
                    "output_config.format: expected {type: json_schema, schema: {...}}", "output_config.format"
                )
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": value["schema"]},
            }
        elif key == "effort":
            if value not in _EFFORTS:
                supported = ", ".join(_EFFORTS)
                raise invalid(
                    f"output_config.effort: {value!r} is not supported (only {supported})", "output_config.effort"
                )
            out["reasoning_effort"] = value
        else:
            raise invalid(f"output_config.{key}: Extra inputs are not permitted", f"output_config.{key}")


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise invalid("metadata: Input should be an object", "metadata")
    for key in metadata:
        if key != "user_id":
            raise invalid(f"metadata.{key}: Extra inputs are not permitted", f"metadata.{key}")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise invalid("metadata.user_id: Input should be a string", "metadata.user_id")
    return user
