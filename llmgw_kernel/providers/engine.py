"""The shared engine behind native (non-OpenAI-format) adapters.

A native adapter is mostly data: ``PARAMS`` says, for every OpenAI request field, whether it
is translated (to which provider field, with which default, bounds and transform), built by
the adapter's own code (messages, tools, ...), dropped (and why), or refused with a 400 that
names it. Fields not in the table are refused, so nothing is ever silently ignored. The
adapter adds its endpoint, auth headers, a ``build`` step for structured fields, a response
transform and a stream translator; :class:`NativeAdapter` does the rest. The same table
renders the docs (:mod:`.docs`, checked against ``docs/providers.md`` by a test), so docs
and behaviour cannot drift.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

import aiohttp
import orjson

from ..policy.model import Target
from .base import Reply, StreamReply, UpstreamError, unsupported
from .http import HttpProvider, loads_object
from .sse import DONE

MISSING: Any = object()
Action = Literal["map", "build", "drop", "refuse"]

#: request fields the gateway itself handles before any adapter sees them
GATEWAY_FIELDS = frozenset({"model", "stream", "stream_options", "metadata"})


@dataclass(frozen=True)
class Shape:
    """The JSON a field may hold: its types at this level and, for an array, the shape of its
    items, for an object, the shapes of the keys the translation reads (others are not looked
    at). ``null`` is always allowed for an object's key (OpenAI's "not set")."""

    types: tuple[type, ...]  # exact JSON types: dict, list, str, int, float, bool
    what: str  # "a string or an array of strings", for the error message
    items: Shape | None = None
    keys: Mapping[str, Shape] | None = None


class Misfit(NamedTuple):
    """Where a value does not fit its :class:`Shape`: the param, what it must be, what it is."""

    param: str
    expected: str
    got: str

    @property
    def message(self) -> str:
        return f"'{self.param}' must be {self.expected}, got {self.got}"


def shape_error(value: Any, shape: Shape, where: str, index: str = "[{}]") -> Misfit | None:
    """The first part of ``value`` that does not fit ``shape`` (its param a path such as
    ``messages[0].content[1].text``; ``index=".{}"`` writes Anthropic's
    ``messages.0.content.1.text``), or None. The recursion follows the shape, whose depth is
    fixed, not the value.

    >>> shape_error({"x": ["a", 5]}, Shape((dict,), "an object", keys={"x": STRINGS}), "body").message
    "'body.x[1]' must be a string, got a number"
    """
    if type(value) not in shape.types:
        return Misfit(where, shape.what, _json_type(value))
    if shape.items is not None and type(value) is list:
        for i, item in enumerate(value):
            if (err := shape_error(item, shape.items, where + index.format(i), index)) is not None:
                return err
    if shape.keys is not None and type(value) is dict:
        for key, sub in shape.keys.items():
            item = value.get(key)
            if item is not None and (err := shape_error(item, sub, f"{where}.{key}", index)) is not None:
                return err
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


STR = Shape((str,), "a string")
INT = Shape((int,), "an integer")
NUMBER = Shape((int, float), "a number")
BOOL = Shape((bool,), "a boolean")
OBJECT = Shape((dict,), "an object")
STRINGS = Shape((str, list), "a string or an array of strings", items=STR)
PART = Shape((dict,), "a content part (an object)", keys={
    "type": STR, "text": STR, "refusal": STR,
    "image_url": Shape((dict,), "an object", keys={"url": STR}),
    "input_audio": Shape((dict,), "an object", keys={"data": STR, "format": STR}),
    "file": Shape((dict,), "an object", keys={"file_data": STR}),
})  # fmt: skip
CONTENT = Shape((str, list), "a string or an array of content parts", items=PART)
TOOL_CALL = Shape((dict,), "a tool call (an object)", keys={
    "id": STR, "type": STR,
    "function": Shape((dict,), "an object", keys={"name": STR, "arguments": STR}),
    "extra_content": Shape((dict,), "an object", keys={
        "google": Shape((dict,), "an object", keys={"thought_signature": STR}),
    }),
})  # fmt: skip
MESSAGE = Shape((dict,), "a message (an object)", keys={
    "role": STR, "content": CONTENT, "name": STR, "tool_call_id": STR,
    "tool_calls": Shape((list,), "an array of tool calls", items=TOOL_CALL),
})  # fmt: skip
TOOL = Shape((dict,), "a tool (an object)", keys={
    "type": STR,
    "function": Shape((dict,), "an object", keys={"name": STR, "description": STR, "parameters": OBJECT}),
})  # fmt: skip

#: The types of OpenAI's chat request fields, as far as a translation reads them: a native
#: adapter refuses a value that does not fit (a 400 naming it: ``messages[0].content``,
#: ``tools[0]``) before its table or its ``build`` looks at it. A :class:`Param` may override.
REQUEST_SHAPES: dict[str, Shape] = {
    "messages": Shape((list,), "an array of messages", items=MESSAGE),
    "max_tokens": INT,
    "max_completion_tokens": INT,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "n": INT,
    "seed": INT,
    "presence_penalty": NUMBER,
    "frequency_penalty": NUMBER,
    "stop": STRINGS,
    "user": STR,
    "reasoning_effort": STR,
    "tools": Shape((list,), "an array of tools", items=TOOL),
    "tool_choice": Shape((str, dict), "a string or an object", keys={
        "type": STR, "function": Shape((dict,), "an object", keys={"name": STR}),
    }),
    "parallel_tool_calls": BOOL,
    "response_format": Shape((dict,), "an object", keys={
        "type": STR, "json_schema": Shape((dict,), "an object", keys={"name": STR, "schema": OBJECT}),
    }),
}  # fmt: skip


@dataclass(frozen=True)
class Param:
    """How one OpenAI request field reaches a provider."""

    action: Action = "map"
    to: str | None = None  # dotted path in the provider body; None = the same name
    default: Any = MISSING  # sent when the client did not send the field
    min: float | None = None
    max: float | None = None
    transform: Callable[[Any], Any] | None = None
    note: str = ""  # why (for drop / refuse / build), shown in the docs table
    shape: Shape | None = None  # the value's type; None: the field's in REQUEST_SHAPES (if any)


def MAP(to: str | None = None, **kw: Any) -> Param:  # noqa: N802 - table vocabulary
    return Param("map", to, **kw)


def BUILD(note: str, shape: Shape | None = None) -> Param:  # noqa: N802
    return Param("build", note=note, shape=shape)


def DROP(note: str) -> Param:  # noqa: N802
    return Param("drop", note=note)


def REFUSE(note: str) -> Param:  # noqa: N802
    return Param("refuse", note=note)


def append_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[dict[str, Any]]) -> None:
    """Append ``items`` as a ``role`` turn under ``key``, merged into the previous turn when it has
    the same role: Anthropic and Gemini want alternating turns (and parallel tool results in one)."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def set_path(out: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def translate_params(kind: str, params: dict[str, Param], body: dict[str, Any]) -> dict[str, Any]:
    """The provider body's scalar fields, from the OpenAI request, per the table."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in GATEWAY_FIELDS:
            continue
        p = params.get(name)
        if p is None:
            raise unsupported(name, f"'{name}' is not supported by {kind} targets")
        if p.action == "refuse" and value is not None:
            raise unsupported(name, f"'{name}' is not supported by {kind} targets: {p.note}")
        if p.action == "drop" or value is None:
            continue
        shape = p.shape or REQUEST_SHAPES.get(name)
        if shape is not None and (err := shape_error(value, shape, name)) is not None:
            raise unsupported(err.param, err.message)
        if p.action != "map":
            continue
        if _out_of_range(p, value):
            raise unsupported(name, f"'{name}' must be in {_range(p)} for {kind} targets, got {value}")
        set_path(out, p.to or name, p.transform(value) if p.transform else value)
    for name, p in params.items():
        if p.default is not MISSING and body.get(name) is None:
            target_path = p.to or name
            if not _has_path(out, target_path):
                set_path(out, target_path, p.default)
    return out


def _out_of_range(p: Param, value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return (p.min is not None and value < p.min) or (p.max is not None and value > p.max)


def _range(p: Param) -> str:
    lo = "-inf" if p.min is None else f"{p.min:g}"
    hi = "inf" if p.max is None else f"{p.max:g}"
    return f"[{lo}, {hi}]"


def _has_path(out: dict[str, Any], path: str) -> bool:
    node: Any = out
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


class StreamTranslator(Protocol):
    """Turns one provider stream into OpenAI ``chat.completion.chunk`` dicts."""

    usage: dict[str, Any] | None

    def feed(self, event: dict[str, Any]) -> Iterable[dict[str, Any]]:
        """Chunks for one provider SSE event's object (raise UpstreamError for an in-stream error)."""

    def finish(self) -> None:
        """At the end of the provider's stream: raise ``UpstreamError("protocol", ...)`` if it ended,
        even cleanly, before the provider said why each choice ended (it was cut: a
        ``finish_reason: stop`` would pass a truncated answer for a whole one)."""


class NativeAdapter(HttpProvider):
    """An adapter whose provider speaks its own wire format. Subclasses fill in the table and hooks."""

    kind: ClassVar[str]
    PARAMS: ClassVar[dict[str, Param]]

    # -- hooks ----------------------------------------------------------------------------------
    def chat_url(self, target: Target, stream: bool) -> tuple[str, dict[str, str] | None]:
        raise NotImplementedError

    def build(self, body: dict[str, Any], out: dict[str, Any], target: Target, stream: bool) -> None:
        """Add the structured fields (messages, tools, ...) to ``out``."""
        raise NotImplementedError

    def to_openai(self, data: dict[str, Any], target: Target) -> dict[str, Any]:
        """A provider response as an OpenAI ``chat.completion``."""
        raise NotImplementedError

    def translator(self, target: Target) -> StreamTranslator:
        raise NotImplementedError

    async def embeddings(self, body: dict[str, Any], target: Target) -> Reply:
        raise unsupported("model", f"{self.kind} targets do not serve embeddings")

    # -- the protocol -----------------------------------------------------------------------------
    def request_body(self, body: dict[str, Any], target: Target, stream: bool) -> bytes:
        out = translate_params(self.kind, self.PARAMS, body)
        self.build(body, out, target, stream)
        return orjson.dumps(out)

    async def chat(self, body: dict[str, Any], target: Target) -> Reply:
        data = self.request_body(body, target, stream=False)
        url, query = self.chat_url(target, stream=False)
        raw = await self._read(await self._post(url, data, self._timeout(target)[0], query))
        parsed = loads_object(raw)
        if parsed is None:
            raise UpstreamError("protocol", f"provider {self.name!r} answered something that is not a JSON object")
        reply = self.to_openai(parsed, target)
        return Reply(orjson.dumps(reply), reply.get("usage"))

    async def chat_stream(self, body: dict[str, Any], target: Target, include_usage: bool) -> StreamReply:
        data = self.request_body(body, target, stream=True)
        url, query = self.chat_url(target, stream=True)
        resp = await self._post(url, data, self._timeout(target)[1], query)
        reply = StreamReply(_never())
        reply.events = self._translate(resp, reply, self.translator(target), include_usage)
        return reply

    async def _translate(
        self, resp: aiohttp.ClientResponse, reply: StreamReply, tr: StreamTranslator, include_usage: bool
    ) -> AsyncIterator[bytes]:
        last: dict[str, Any] | None = None
        async for _, event in self._sse(resp):
            if event is None:  # [DONE]
                continue
            for chunk in tr.feed(event):
                last = chunk
                yield orjson.dumps(chunk)
        tr.finish()
        reply.usage = tr.usage
        if include_usage and tr.usage is not None and last is not None:
            head = {k: last[k] for k in ("id", "object", "created", "model") if k in last}
            yield orjson.dumps({**head, "choices": [], "usage": tr.usage})
        yield DONE


async def _never() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


def params_table(adapter: type[NativeAdapter]) -> list[tuple[str, str, str]]:
    """(OpenAI field, what happens, note) rows for the docs."""
    rows = []
    for name, p in adapter.PARAMS.items():
        if p.action == "map":
            what = f"→ `{p.to or name}`"
            extras = []
            if p.default is not MISSING:
                extras.append(f"default {p.default}")
            if p.min is not None or p.max is not None:
                extras.append(f"range {_range(p)}")
            if p.transform is not None:
                extras.append("transformed")
            note = ", ".join(extras + ([p.note] if p.note else []))
        else:
            what = {"build": "translated", "drop": "dropped", "refuse": "refused (400)"}[p.action]
            note = p.note
        rows.append((name, what, note))
    return rows
