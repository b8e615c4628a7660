"""``kind: openai`` — OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, ...).

Requests pass through untouched apart from ``model`` (the target's) and, for streams, an
``include_usage`` the gateway adds when the provider's ``stream_usage`` is on so it can cost
the stream; that extra usage chunk is dropped before the client sees it unless it asked.

The same adapter carries OpenAI's other generation endpoints as they are (``/responses``,
legacy ``/completions``: :meth:`OpenAIAdapter.native`, :meth:`OpenAIAdapter.native_stream`),
for the pass-through of ``/v1/responses`` and ``/v1/completions`` (``proxy/passthrough.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..policy.model import Provider, Target
from .base import AdapterContext, Reply, StreamReply
from .http import HttpProvider, loads_object, openai_error_field
from .sse import StreamEnd, payloads


class OpenAIAdapter(HttpProvider):
    def __init__(self, name: str, provider: Provider, ctx: AdapterContext) -> None:
        super().__init__(name, provider, ctx)
        base = provider.base_url or ""
        self._chat_url = f"{base}/chat/completions"
        self._embeddings_url = f"{base}/embeddings"

    # -- hooks for OpenAI-format providers with other addressing (e.g. Azure deployments) -------
    def chat_url(self, target: Target) -> str:
        return self._chat_url

    def embeddings_url(self, target: Target) -> str:
        return self._embeddings_url

    def native_url(self, endpoint: str, target: Target) -> str:
        """The URL of OpenAI's ``endpoint`` (``responses`` or ``completions``) for ``target``."""
        return f"{self.provider.base_url or ''}/{endpoint}"

    def upstream_body(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        body["model"] = target.model
        return body

    def native_body(self, endpoint: str, body: dict[str, Any], target: Target) -> dict[str, Any]:
        """``body`` as ``endpoint`` receives it: ``model`` is the target's."""
        return self.upstream_body(body, target)

    async def native(self, endpoint: str, body: dict[str, Any], target: Target) -> bytes:
        """POST ``body`` to ``endpoint`` as it is (``model`` replaced); the whole answer's bytes."""
        data = orjson.dumps(self.native_body(endpoint, body, target))
        return await self._read(await self._post(self.native_url(endpoint, target), data, self._timeout(target)[0]))

    async def native_stream(self, endpoint: str, body: dict[str, Any], target: Target) -> AsyncIterator[bytes]:
        """POST a streamed ``body`` to ``endpoint``; returns once the upstream accepted it, with
        its SSE data payloads as they arrive (``event:`` lines dropped: a Responses event's
        ``data`` carries its ``type``)."""
        data = orjson.dumps(self.native_body(endpoint, body, target))
        resp = await self._post(self.native_url(endpoint, target), data, self._timeout(target)[1])
        end = StreamEnd() if endpoint == "completions" else None  # Responses: its own end event
        return payloads(self._sse(resp), end)

    async def chat(self, body: dict[str, Any], target: Target) -> Reply:
        data = orjson.dumps(self.upstream_body(body, target))
        raw = await self._read(await self._post(self.chat_url(target), data, self._timeout(target)[0]))
        return Reply(raw, _usage(raw))

    async def embeddings(self, body: dict[str, Any], target: Target) -> Reply:
        data = orjson.dumps(self.upstream_body(body, target))
        raw = await self._read(await self._post(self.embeddings_url(target), data, self._timeout(target)[0]))
        return Reply(raw, _usage(raw))

    async def chat_stream(self, body: dict[str, Any], target: Target, include_usage: bool) -> StreamReply:
        body = self.upstream_body(body, target)
        added_usage = False
        if self.provider.stream_usage and not include_usage:
            opts = body.get("stream_options") or {}
            body["stream_options"] = {**opts, "include_usage": True}
            added_usage = True
        resp = await self._post(self.chat_url(target), orjson.dumps(body), self._timeout(target)[1])
        reply = StreamReply(_never())
        reply.events = self._events(resp, reply, added_usage)
        return reply

    def error_code(self, raw: bytes, status: int) -> str | None:
        """The upstream's ``error.code`` (``context_length_exceeded``, ``insufficient_quota``, ...):
        the SDKs expose it (``exc.code``) and applications branch on it."""
        return self._scrub_field(openai_error_field(raw, "code"))

    def error_param(self, raw: bytes, status: int) -> str | None:
        return self._scrub_field(openai_error_field(raw, "param"))

    def _scrub_field(self, value: str | None) -> str | None:
        return value if value is None or self._scrub(value) == value else None  # a key in it: dropped

    def relays(self, chunk: dict[str, Any]) -> bool:
        """Whether the client gets this chunk of a chat stream (every one, for OpenAI)."""
        return True

    async def _events(self, resp: aiohttp.ClientResponse, reply: StreamReply, drop_usage: bool) -> AsyncIterator[bytes]:
        """The chat stream's payloads as the client gets them; its usage noted in ``reply``."""
        end = StreamEnd()
        async for payload, chunk in self._sse(resp):
            end.see(chunk)
            if chunk is not None:
                usage = chunk.get("usage")
                if usage:
                    reply.usage = usage
                    if drop_usage and not chunk.get("choices"):
                        continue  # the chunk only the gateway asked for
                if not self.relays(chunk):
                    continue
            yield payload
        end.check()


async def _never() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


def _usage(raw: bytes) -> dict[str, Any] | None:
    # Usage sits at the end of an OpenAI body: look for it before parsing the whole thing.
    if b'"usage"' not in raw:
        return None
    body = loads_object(raw)
    usage = body.get("usage") if body else None
    return usage if isinstance(usage, dict) else None
