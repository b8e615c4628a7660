"""Cheap structural checks of OpenAI requests: a 400 that names the parameter.

Only what the gateway itself relies on is checked, plus the common typed fields; anything
else passes through to the provider untouched (it is the authority on its own API).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, cast

import orjson

from ..providers.engine import Shape, shape_error
from .errors import GatewayError, bad_request

#: How deeply a request's JSON (a body, the ``x-llmgw-metadata`` header, an admin body) may
#: nest, counting the top-level value as level 1. Deeper input is refused at parse time with a
#: 400 naming the parameter: nothing downstream (cache keys, budgets, provider bodies, the log
#: writer, whose JSON encoder stops at 254 levels) ever sees it. Real requests nest < 20 levels.
MAX_JSON_DEPTH = 64
_CONTAINERS = (dict, list)


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Where ``value`` nests more than ``limit`` levels deep (the top-level key and at most two
    levels below it: ``metadata.a.a``, ``messages[0].content``), or None if it does not.
    A breadth-first walk over the containers, one level at a time (no recursion).

    >>> too_deep({"metadata": {"a": {"a": {"a": 1}}}}, limit=3)
    'metadata.a.a'
    >>> too_deep({"messages": [{"content": [[1]]}]}, limit=5) is None
    True
    """
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return _where(value, limit)
        level = [c for n in level for c in (n.values() if type(n) is dict else n) if type(c) in _CONTAINERS]
    return None


def _where(value: Any, limit: int) -> str:
    """The path to the first container below ``limit`` levels (the slow walk, run only to refuse)."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > limit:
            return _path(path)
        for key, child in node.items() if type(node) is dict else enumerate(node):
            if type(child) in _CONTAINERS:
                stack.append((child, depth + 1, (*path, key) if len(path) < 3 else path))
    return ""


def _path(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if type(key) is int else (f".{key}" if out else str(key))
    return out


def load_json(raw: bytes | str, what: str = "The request body", param: str | None = None) -> Any:
    """``raw`` parsed (orjson), or a 400 when it is not JSON or nests more than
    :data:`MAX_JSON_DEPTH` levels. ``param`` names the input in the error (a header's name);
    for a body, the error names the nested parameter. The one parser for client JSON: the
    chat, embeddings and messages bodies, ``x-llmgw-metadata``, and the admin API bodies."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(
            f"{what} is not valid JSON ({exc.msg} at position {exc.pos})", param, "invalid_json"
        ) from None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    # fewer brackets than the limit cannot nest deeper than it (bytes.count runs in C)
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and not _shallow(value):
        where = too_deep(value)
        if where is not None:
            name = param or where or None
            at = f"'{where}' in {what}" if param and where else (f"'{name}'" if name else what)
            message = f"{at} is nested more than {MAX_JSON_DEPTH} levels deep (the gateway's limit)"
            raise GatewayError(400, message, param=name, code="nesting_too_deep")
    return value


class _Wrapper(threading.local):
    """Lists nested so that orjson's own depth limit, applied to them with a value inside,
    refuses exactly the values nested deeper than :data:`MAX_JSON_DEPTH`."""

    def __init__(self, levels: int) -> None:
        self.slot: list[Any] = [None]
        self.outer: list[Any] = self.slot
        for _ in range(levels - 1):
            self.outer = [self.outer]


def _orjson_depth_limit() -> int | None:
    """The deepest nesting ``orjson.dumps`` serialises (254 in orjson 3), or None if unbounded."""

    def ok(n: int) -> bool:
        value: Any = 0
        for _ in range(n):
            value = [value]
        try:
            orjson.dumps(value)
        except TypeError:
            return False
        return True

    lo, hi = 1, 4096
    if ok(hi):
        return None
    while hi - lo > 1:  # ok(lo), not ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


_limit = _orjson_depth_limit()
_wrapper = _Wrapper(_limit - MAX_JSON_DEPTH) if _limit is not None and _limit > MAX_JSON_DEPTH else None


def _shallow(value: Any) -> bool:
    """True when ``value`` surely nests at most :data:`MAX_JSON_DEPTH` levels: orjson serialises
    it inside the wrapper (about 3 µs for 3 KB, where the Python walk takes 15 µs). False
    means "walk it" (too deep, or no wrapper: orjson without a depth limit)."""
    w = _wrapper
    if w is None:
        return False
    w.slot[0] = value
    try:
        orjson.dumps(w.outer)
    except TypeError:
        return False
    finally:
        w.slot[0] = None
    return True


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
    "tool_choice": ((str, dict), "a string or an object", None),
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


#: metadata keys that name who a request counts for (budgets, rate limits, cache namespaces,
#: the log's ``team`` / ``end_user`` columns): a string when given, as OpenAI's metadata values are
_METADATA_NAMES = ("team", "user")
#: the longest team / user name a request may give: each name is a budget and rate-limit subject
#: held in memory for its windows, a Prometheus label (``who``), a cache namespace, a filter
#: option and a row of the dashboards — a client's 20,000-character names were all of those
MAX_NAME_CHARS = 256
#: characters a name may not hold: C0 and C1 controls, DEL, and the line and paragraph separators
_CONTROL = frozenset([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029"])


def check_metadata(meta: Any) -> None:
    """Refuse ``metadata.team`` / ``metadata.user`` that is not a string (an object, a number):
    it has no one text form to budget, limit and log under (it was logged as a Python repr);
    or that is not a name (:func:`check_name`)."""
    for name in _METADATA_NAMES:
        value = meta.get(name) if isinstance(meta, dict) else None
        if value is not None and not isinstance(value, str):
            raise bad_request(
                f"'metadata.{name}' must be a string, got {type(value).__name__}",
                param=f"metadata.{name}",
                code="invalid_type",
            )
        check_name(f"metadata.{name}", value)


def check_name(param: str, value: Any) -> None:
    """Refuse a team or user name (``metadata.team``, ``metadata.user``, the body's ``user``)
    over :data:`MAX_NAME_CHARS` characters or holding a control character: a 400 naming it."""
    if not isinstance(value, str):
        return
    if len(value) > MAX_NAME_CHARS:
        raise bad_request(
            f"'{param}' must be at most {MAX_NAME_CHARS} characters, got {len(value)}",
            param=param,
            code="invalid_value",
        )
    if not _CONTROL.isdisjoint(value):
        raise bad_request(f"'{param}' must not contain control characters", param=param, code="invalid_value")


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
        content = msg.get("content")
        if content is not None and type(content) is not str:
            _check_shape(content, _CONTENT, f"messages[{i}].content")
        calls = msg.get("tool_calls")
        if calls is not None:
            _check_shape(calls, _CALLS, f"messages[{i}].tool_calls")
    _check_fields(body, _CHAT_FIELDS)
    if body.get("tools") is not None:
        _check_shape(body["tools"], _TOOLS, "tools")
    opts = body.get("stream_options")
    if opts is not None and not body.get("stream"):
        raise bad_request(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options", code="invalid_value"
        )


#: what OpenAI refuses and the gateway passed upstream (where a provider took it, an object's
#: Python repr was the prompt; the test upstream crashed): a message's ``content`` that is not a
#: string or null (null is left to the provider: an assistant turn with tool calls has none),
#: ``tools`` and an assistant turn's ``tool_calls`` that are not arrays of objects whose
#: ``function`` is an object
_PART = Shape((dict,), "a content part (an object)")
_CONTENT = Shape((str, list), "a string or an array of content parts", items=_PART)
_FUNCTION = {"function": Shape((dict,), "an object")}
_TOOLS = Shape((list,), "an array", items=Shape((dict,), "a tool (an object)", keys=_FUNCTION))
_CALLS = Shape((list,), "an array", items=Shape((dict,), "a tool call (an object)", keys=_FUNCTION))


def _check_shape(value: Any, shape: Shape, where: str) -> None:
    if _fits(value, shape.items is _PART):
        return  # the common case, without the general walk (8 tools: ~1 µs instead of ~7)
    if (err := shape_error(value, shape, where)) is not None:
        raise bad_request(err.message, param=err.param, code="invalid_type")


def _fits(value: Any, parts: bool) -> bool:
    """A list of objects (with an object ``function`` when given, unless ``parts``)."""
    if type(value) is not list:
        return False
    if parts:
        return all(type(v) is dict for v in value)
    return all(type(v) is dict and type(v.get("function", _EMPTY)) is dict for v in value)


_EMPTY: dict[str, Any] = {}


def check_embeddings(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise bad_request("'input' is required", param="input", code="missing_required_parameter")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise bad_request("'input' must be a string or a non-empty array", param="input", code="invalid_value")
    if type(value) is list:
        _check_input_items(value)
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise bad_request("'metadata' must be an object", param="metadata", code="invalid_type")


#: the arrays OpenAI's embeddings ``input`` takes: strings, token ids, arrays of token ids
_INPUT_FORMS = ({str}, {int}, {list})


def _check_input_items(items: list[Any]) -> None:
    """``input`` as an array: all strings, all token ids (integers) or all arrays of token ids,
    as OpenAI takes it; ``[{"a": 1}]``, ``[["a"]]``, ``[1.5]`` were passed upstream. The types
    are collected in C (``map``): a body of a million token ids is checked in ~15 ms."""
    kinds = set(map(type, items))
    ok = kinds in _INPUT_FORMS
    if ok and kinds == {list}:
        ok = set(map(type, itertools.chain.from_iterable(items))) <= {int}
    if ok:
        return
    at = next((i for i, x in enumerate(items) if not _input_item_fits(x, type(items[0]))), 0)
    raise bad_request(
        f"'input' must be a string, an array of strings, an array of token ids (integers) or an array of arrays "
        f"of token ids; 'input[{at}]' does not fit",
        param=f"input[{at}]",
        code="invalid_type",
    )


def _input_item_fits(item: Any, form: type) -> bool:
    """Whether ``item`` has the form of the array's first item (the slow walk, run only to refuse)."""
    if form not in (str, int, list) or type(item) is not form:
        return False
    return form is not list or all(type(t) is int for t in cast("list[Any]", item))
