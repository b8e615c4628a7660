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

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

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
class Param:
    """How one OpenAI request field reaches a provider."""

    action: Action = "map"
    to: str | None = None  # dotted path in the provider body; None = the same name
    default: Any = MISSING  # sent when the client did not send the field
    min: float | None = None
    max: float | None = None
    transform: Callable[[Any], Any] | None = None
    note: str = ""  # why (for drop / refuse / build), shown in the docs table


def MAP(to: str | None = None, **kw: Any) -> Param:  # noqa: N802 - table vocabulary
    return Param("map", to, **kw)


def BUILD(note: str) -> Param:  # noqa: N802
    return Param("build", note=note)


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
        if p.action != "map" or value is None:
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

    def feed(self, payload: bytes) -> Iterable[dict[str, Any]]:
        """Chunks for one provider SSE payload (raise UpstreamError for an in-stream error)."""

    def finish(self) -> Iterable[dict[str, Any]]:
        """Chunks owed at the end (a final finish_reason, if the provider never sent one)."""


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
        async for payload in self._payloads(resp):
            if payload == DONE:
                continue
            for chunk in tr.feed(payload):
                last = chunk
                yield orjson.dumps(chunk)
        for chunk in tr.finish():
            last = chunk
            yield orjson.dumps(chunk)
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
