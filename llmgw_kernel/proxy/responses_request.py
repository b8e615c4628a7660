"""OpenAI Responses request → OpenAI chat request, for ``POST /v1/responses``.

The chat request is what the one pipeline serves, for every provider kind (the answer goes
back through :mod:`.responses_response` / :mod:`.responses_stream`), so routing, limits,
cache, guardrails, the log row and replay treat a Responses request like a chat completion.
Top-level fields are a table (:data:`FIELDS`: map / build / drop / refuse, with the JSON
shape each must hold); a field not in it is refused, so nothing is ignored silently. Errors
are 400s in OpenAI's format whose ``param`` names the exact place (``input[2].content[0]``).

The gateway stores no responses: ``store: true``, ``previous_response_id``, ``conversation``,
``background`` and ``item_reference`` items are refused; ``store`` absent or false is fine.

A request that may pass through to an OpenAI upstream (``proxy/passthrough.py``) is translated
leniently (a :class:`Lenient` given): what only OpenAI can serve (built-in tools, stored state,
unknown fields, ...) is noted instead of refused and left out of the chat form, and each chat
text remembers where it came from, so redactions made on the chat form can be written back.

>>> to_chat_request({"model": "m", "instructions": "Be brief.", "input": "hi"})["messages"]
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..providers.engine import BOOL, BUILD, DROP, INT, MAP, NUMBER, OBJECT, REFUSE, STR, Param, Shape, shape_error
from .errors import GatewayError

if TYPE_CHECKING:
    from .passthrough import Lenient

_PART = Shape((dict,), "a content part (an object)", keys={
    "type": STR, "text": STR, "image_url": STR, "detail": STR, "refusal": STR,
})  # fmt: skip
_CONTENT = Shape((str, list), "a string or an array of content parts", items=_PART)
_ITEM = Shape((dict,), "an input item (an object)", keys={
    "type": STR, "role": STR, "content": _CONTENT, "call_id": STR, "name": STR, "arguments": STR,
    "output": _CONTENT,
})  # fmt: skip
_TOOL = Shape((dict,), "a tool (an object)", keys={
    "type": STR, "name": STR, "description": STR, "parameters": OBJECT, "strict": BOOL,
})  # fmt: skip
_STORAGE = "it needs server-side storage, and the gateway stores no responses; send the whole conversation as `input`"

#: the Responses request's fields: what each becomes in the chat request, and its JSON shape
FIELDS: dict[str, Param] = {
    "model": MAP(note="the route name, as for /v1/chat/completions", shape=STR),
    "input": BUILD(
        "a string → one user message; items: messages → messages, `function_call` → assistant `tool_calls`, "
        "`function_call_output` → `tool` messages, `reasoning` dropped; other item types refused",
        Shape((str, list), "a string or an array of input items", items=_ITEM),
    ),
    "instructions": BUILD("→ a leading `system` message", STR),
    "max_output_tokens": MAP(
        "max_completion_tokens", min=1, shape=INT, note="chat's current field: reasoning models refuse `max_tokens`"
    ),
    "temperature": MAP(min=0, max=2, shape=NUMBER),
    "top_p": MAP(min=0, max=1, shape=NUMBER),
    "parallel_tool_calls": MAP(shape=BOOL),
    "user": MAP(shape=STR),
    "safety_identifier": BUILD("→ `user` (unless `user` is set)", STR),
    "metadata": MAP(note="logged with the request, not sent (as for chat)", shape=OBJECT),
    "stream": BUILD("→ `stream` with `stream_options.include_usage`, so `response.completed` carries usage", BOOL),
    "tools": BUILD(
        "function tools → chat function tools; built-in tools (web search, file search, ...) refused",
        Shape((list,), "an array of tools", items=_TOOL),
    ),
    "tool_choice": BUILD(
        "auto/none/required → the same; `{type: function, name}` → `{type: function, function}`; ignored without tools"
    ),
    "text": BUILD(
        "`format` text / json_object / json_schema → `response_format`; `verbosity` → `verbosity`",
        Shape((dict,), "an object", keys={"format": OBJECT, "verbosity": STR}),
    ),
    "reasoning": BUILD(
        "`effort` → `reasoning_effort`; `summary` dropped (chat returns no reasoning summary)",
        Shape((dict,), "an object", keys={"effort": STR}),
    ),
    "store": BUILD("absent or false accepted; `true` refused: " + _STORAGE, BOOL),
    "include": DROP("asks for extra output data (logprobs, encrypted reasoning) the translation does not return"),
    "prompt_cache_key": DROP("a provider cache hint; the gateway's cache is configured in the policy"),
    "service_tier": DROP("a capacity tier; the policy chooses the target"),
    "truncation": DROP("the context-overflow strategy; chat targets refuse an over-long input instead"),
    "max_tool_calls": DROP("limits built-in tool calls, which the translation refuses anyway"),
    "stream_options": DROP("`include_obfuscation` only; the gateway's events carry no obfuscation"),
    "previous_response_id": REFUSE(_STORAGE),
    "conversation": REFUSE(_STORAGE),
    "background": REFUSE("background responses need server-side storage"),
    "prompt": REFUSE("stored prompt templates live on OpenAI's platform"),
    "top_logprobs": REFUSE("the translation returns no logprobs"),
    "context_management": REFUSE("server-side context compaction is OpenAI-only"),
}
_PASS_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_TEXT_PARTS = ("input_text", "output_text", "text")


#: fields whose meaning lives in OpenAI's storage (pass-through forwards them only to one OpenAI upstream)
STATEFUL = frozenset({"store", "previous_response_id", "conversation", "background"})


def invalid(message: str, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def _native_only(
    lenient: Lenient | None, message: str, param: str, code: str = "unsupported_parameter", stateful: bool = False
) -> None:
    """Refuse ``param`` (no lenient translation) or note it as served by pass-through only."""
    if lenient is None:
        raise invalid(message, param, code)
    lenient.native.append((param, message))
    if stateful or param in STATEFUL:
        lenient.stateful.append(param)


def to_chat_request(body: Any, lenient: Lenient | None = None) -> dict[str, Any]:
    """The chat request for a Responses request (a 400 naming the field if invalid or unsupported;
    with ``lenient``, what only pass-through can serve is noted there instead)."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    out: dict[str, Any] = {}
    for name, value in body.items():
        p = FIELDS.get(name)
        if p is None:
            _native_only(lenient, f"Unknown parameter: '{name}'.", name, "unknown_parameter")
            continue
        if p.action == "refuse" and value is not None:
            _native_only(lenient, f"'{name}' is not supported by this gateway: {p.note}", name)
            continue
        if p.action == "drop" or value is None:
            continue
        if p.shape is not None and (err := shape_error(value, p.shape, name)) is not None:
            raise invalid(err.message, err.param, "invalid_type")
        if p.action == "map":
            lo, hi = p.min, p.max
            if isinstance(value, (int, float)) and ((lo is not None and value < lo) or (hi is not None and value > hi)):
                raise invalid(f"'{name}' must be in [{lo:g}, {'inf' if hi is None else f'{hi:g}'}], got {value}", name)
            out[p.to or name] = value
    if body.get("store") is True:
        _native_only(lenient, f"'store: true' is not supported by this gateway: {_STORAGE}", "store")
    if body.get("input") is None:
        raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    head = _instructions(body.get("instructions"))
    if head and lenient is not None:
        lenient.slots.append(((0, "content"), ("instructions",)))
    messages = _input(body["input"], lenient, len(head))
    if not messages and lenient is not None and lenient.native:  # all stored or built-in: an empty turn stands in
        messages = [{"role": "user", "content": ""}]
    if not messages:
        raise invalid("'input' must hold at least one message or function call output", "input", "invalid_value")
    out["messages"] = head + messages
    if body.get("safety_identifier") is not None and "user" not in out:
        out["user"] = body["safety_identifier"]
    tools = [_tool(t, i, lenient) for i, t in enumerate(body.get("tools") or ())]
    if any(tools):
        out["tools"] = [t for t in tools if t is not None]
    _tool_choice(body.get("tool_choice"), out, lenient)
    _text(body.get("text"), out)
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _instructions(text: Any) -> list[dict[str, Any]]:
    return [{"role": "system", "content": text}] if text else []


def _input(value: Any, lenient: Lenient | None = None, base: int = 0) -> list[dict[str, Any]]:
    """The chat messages of ``input`` (``base``: how many messages come before them)."""
    if isinstance(value, str):
        if lenient is not None:
            lenient.slots.append(((base, "content"), ("input",)))
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        at = base + len(messages)
        if kind == "message":
            messages.append(_message(item, where, lenient, (at, i)))
        elif kind == "function_call":
            _function_call(item, where, messages)
            if lenient is not None:
                at = base + len(messages) - 1
                n = len(messages[-1]["tool_calls"]) - 1
                lenient.slots.append(((at, "tool_calls", n, "function", "arguments"), ("input", i, "arguments")))
        elif kind == "function_call_output":
            call_id = _required_str(item, "call_id", where)
            output = item.get("output")
            source: tuple[Any, ...]
            if isinstance(output, str):
                text, source = output, ("input", i, "output")
            else:
                text, source = _joined_text(output or [], f"{where}.output"), ("input", i, "output", [])
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            if lenient is not None:
                lenient.slots.append(((at, "content"), source))
        elif kind == "reasoning":
            continue  # the model's own notes: not replayable on another model
        elif kind == "item_reference":
            _native_only(lenient, f"'{where}': item references are not supported: {_STORAGE}", where, stateful=True)
        else:
            msg = f"'{where}.type': unsupported input item type {kind!r}"
            _native_only(lenient, msg, f"{where}.type", "invalid_value")
    return messages


def _message(
    item: dict[str, Any], where: str, lenient: Lenient | None = None, at: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """One message item as a chat message (``at``: its index in the chat messages, in ``input``)."""
    role = _PASS_ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise invalid(f"'{where}.role' must be one of user, system, developer, assistant", f"{where}.role")
    content = item.get("content")
    if content is None:
        raise invalid(f"Missing required parameter: '{where}.content'.", f"{where}.content")
    k, i = at
    slots = lenient.slots if lenient is not None else []
    if isinstance(content, str):
        slots.append(((k, "content"), ("input", i, "content")))
        return {"role": role, "content": content}
    if role != "user":  # system and assistant turns are text in chat
        slots.append(((k, "content"), ("input", i, "content", [])))
        return {"role": role, "content": _joined_text(content, f"{where}.content")}
    parts: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        part = _part(p, f"{where}.content[{j}]", lenient)
        if part is not None:
            if part["type"] == "text":
                slots.append(((k, "content", len(parts), "text"), ("input", i, "content", j, "text")))
            parts.append(part)
    if len(parts) == 1 and parts[0]["type"] == "text":
        for n, (chat, native) in enumerate(slots):  # the one part's text is the content itself
            if chat == (k, "content", 0, "text"):
                slots[n] = ((k, "content"), native)
        return {"role": role, "content": parts[0]["text"]}
    return {"role": role, "content": parts}


def _part(part: dict[str, Any], where: str, lenient: Lenient | None = None) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": _required_str(part, "text", where)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            _native_only(lenient, f"'{where}': only images given by `image_url` are supported (no `file_id`)", where)
            return None
        image: dict[str, Any] = {"url": url}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    _native_only(lenient, f"'{where}.type': unsupported content part type {kind!r}", f"{where}.type", "invalid_value")
    return None


def _joined_text(parts: list[Any], where: str) -> str:
    texts = []
    for j, part in enumerate(parts):
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            texts.append(_required_str(part, "text", f"{where}[{j}]"))
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        else:
            at = f"{where}[{j}].type"
            raise invalid(f"'{at}': only text parts are supported here, not {kind!r}", at)
    return "".join(texts)


def _function_call(item: dict[str, Any], where: str, messages: list[dict[str, Any]]) -> None:
    """A ``function_call`` item: a tool call on the preceding assistant turn (a new one if none)."""
    call = {
        "id": _required_str(item, "call_id", where),
        "type": "function",
        "function": {"name": _required_str(item, "name", where), "arguments": item.get("arguments") or "{}"},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _required_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"Missing required parameter: '{where}.{key}'.", f"{where}.{key}", "missing_required_parameter")
    return value


def _tool(tool: dict[str, Any], i: int, lenient: Lenient | None = None) -> dict[str, Any] | None:
    where = f"tools[{i}]"
    if tool.get("type") != "function":
        kind = tool.get("type")
        _native_only(lenient, f"'{where}.type': only function tools are supported, not {kind!r}", f"{where}.type")
        return None
    fn: dict[str, Any] = {"name": _required_str(tool, "name", where)}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            fn[key] = tool[key]
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any, out: dict[str, Any], lenient: Lenient | None = None) -> None:
    """Translated, or (once checked) left out when there are no tools: chat refuses a choice without tools."""
    if choice is None:
        return
    if choice in ("auto", "none", "required"):
        translated: Any = choice
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        translated = {"type": "function", "function": {"name": choice["name"]}}
    elif isinstance(choice, dict) and choice.get("type") not in (None, "function"):  # a built-in tool's
        _native_only(lenient, f"'tool_choice': built-in tool {choice.get('type')!r} is not supported", "tool_choice")
        return
    else:
        raise invalid("'tool_choice' must be auto, none, required or {type: function, name}", "tool_choice")
    if out.get("tools"):
        out["tool_choice"] = translated


def _text(text: Any, out: dict[str, Any]) -> None:
    if not text:
        return
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    kind = fmt.get("type") if fmt else None
    if kind is None or kind == "text":
        return
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise invalid(f"'text.format.type' must be text, json_object or json_schema, not {kind!r}", "text.format.type")
    schema = {"name": _required_str(fmt, "name", "text.format")}
    if not isinstance(fmt.get("schema"), dict):
        raise invalid("Missing required parameter: 'text.format.schema'.", "text.format.schema")
    for key in ("schema", "strict", "description"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    out["response_format"] = {"type": "json_schema", "json_schema": schema}
