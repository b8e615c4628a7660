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
from .asgi import Receive, Scope, Send
from .runtime import Gateway
from .translated_send import NOT_CHAT, Headers, TranslatedSend


def _parse(raw: bytes, rec: RequestRecord) -> dict[str, Any]:
    body = to_openai_request(pipeline.parse_json(raw, rec))
    rec.request_raw = orjson.dumps(body)  # the log keeps the OpenAI form
    return body


ANTHROPIC = pipeline.Inbound("anthropic", _parse)


class AnthropicSend(TranslatedSend):
    """An ASGI ``send`` that turns the pipeline's OpenAI-format responses into Anthropic ones."""

    __slots__ = ()

    def open_stream(self) -> AnthropicEvents:
        return AnthropicEvents()

    def stream_headers(self) -> Headers:
        return [(b"request-id", self.rid)]

    def whole(self, status: int, raw: bytes) -> tuple[int, bytes, Headers]:
        data: Any = None
        if status == 200:
            try:
                data = to_anthropic_message(orjson.loads(raw))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                status, raw = 502, NOT_CHAT
        if data is None:
            data = anthropic_error(status, raw, self.rid.decode("latin-1") or None)
        return status, orjson.dumps(data), [(b"request-id", self.rid)]


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``POST /v1/messages`` through the chat pipeline."""
    await pipeline.handle(gw, scope, receive, AnthropicSend(send), "chat.completions", ANTHROPIC)
