"""``POST /v1/messages``: the Anthropic Messages API in front of the one pipeline.

A request is served by :func:`.pipeline.handle` like any ``/v1/chat/completions`` request —
same validation, routing, fallbacks, logging and metrics — with two adapters around it:

- request side, :data:`ANTHROPIC` (an :class:`~.pipeline.Inbound`): the body is translated
  to an OpenAI chat request (:mod:`.anthropic_request`) with ``include_usage`` on for streams;
  the log keeps that OpenAI form (so both APIs hash and replay alike) and ``api='anthropic'``;
- response side, :class:`AnthropicSend` wraps the ASGI ``send``: OpenAI JSON becomes an
  Anthropic message, OpenAI SSE becomes Anthropic events (:mod:`.anthropic_stream`), and the
  gateway's errors keep their status with Anthropic's body ``{"type": "error", "error":
  {"type", "message"}, "request_id"}``. Responses also carry ``request-id`` (the SDK's
  ``_request_id``).

The OpenAI path pays nothing for this: it never sees these wrappers.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..log.record import RequestRecord
from . import pipeline
from .anthropic_request import to_openai_request
from .anthropic_response import anthropic_error, to_anthropic_message
from .anthropic_stream import AnthropicEvents
from .asgi import Message, Receive, Scope, Send
from .runtime import Gateway


def _parse(raw: bytes, rec: RequestRecord) -> dict[str, Any]:
    body = to_openai_request(pipeline.parse_json(raw, rec))
    rec.request_raw = orjson.dumps(body)  # the log keeps the OpenAI form
    return body


ANTHROPIC = pipeline.Inbound("anthropic", _parse)


class AnthropicSend:
    """An ASGI ``send`` that turns the pipeline's OpenAI-format responses into Anthropic ones."""

    __slots__ = ("_send", "_start", "_parts", "_events", "_rid")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._parts: list[bytes] = []
        self._events: AnthropicEvents | None = None
        self._rid = b""

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            sse = False
            for key, value in message["headers"]:
                if key == b"x-llmgw-request-id":
                    self._rid = value
                elif key == b"content-type":
                    sse = value.startswith(b"text/event-stream")
            if sse and message["status"] == 200:
                self._events = AnthropicEvents()
                await self._send({**message, "headers": [*message["headers"], (b"request-id", self._rid)]})
            else:
                self._start, self._parts = message, []
            return
        if kind != "http.response.body":
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self._events is not None:
            out = self._events.feed(body)
            if not more:
                out += self._events.close()
            if out or not more:
                await self._send({"type": "http.response.body", "body": out, "more_body": more})
            return
        self._parts.append(body)
        if not more:
            await self._send_whole(b"".join(self._parts))

    async def _send_whole(self, raw: bytes) -> None:
        start = self._start
        assert start is not None, "response body before its start"
        status: int = start["status"]
        data: Any = None
        if status == 200:
            try:
                data = to_anthropic_message(orjson.loads(raw))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                status = 502
                raw = b'{"error": {"message": "the upstream answer is not a chat completion"}}'
        if data is None:
            data = anthropic_error(status, raw, self._rid.decode("latin-1") or None)
        body = orjson.dumps(data)
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers += [(b"content-length", str(len(body)).encode()), (b"request-id", self._rid)]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``POST /v1/messages`` through the chat pipeline."""
    await pipeline.handle(gw, scope, receive, AnthropicSend(send), "chat.completions", ANTHROPIC)
