"""``POST /v1/responses``: OpenAI's Responses API in front of the one pipeline.

A request is served by :func:`.pipeline.handle` like any ``/v1/chat/completions`` request —
keys, validation, routing, limits, cache, guardrails, fallbacks, the log row, metrics and
replay — with two adapters around it, for every provider kind:

- request side, an :class:`~.pipeline.Inbound` named ``responses``: the body is translated to
  a chat request (:mod:`.responses_request`); the log keeps that chat form (so both APIs hash,
  cache and replay alike) and ``api='responses'``;
- response side, :class:`ResponsesSend` wraps the ASGI ``send``: chat JSON becomes a
  ``response`` object (:mod:`.responses_response`), chat SSE becomes Responses events
  (:mod:`.responses_stream`). The gateway's errors are already in OpenAI's format and pass
  unchanged.

The OpenAI chat path pays nothing for this: it never sees these wrappers.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..log.record import RequestRecord
from . import pipeline
from .asgi import Receive, Scope, Send
from .responses_request import to_chat_request
from .responses_response import response_id, to_response
from .responses_stream import ResponsesEvents
from .runtime import Gateway
from .translated_send import NOT_CHAT, Headers, TranslatedSend


class ResponsesSend(TranslatedSend):
    """An ASGI ``send`` that turns the pipeline's chat responses into Responses ones; its
    :meth:`parse` is the request side (it keeps the original request, echoed in the answer).
    The gateway's errors are in OpenAI's format already and pass unchanged."""

    __slots__ = ("request",)

    def __init__(self, send: Send) -> None:
        super().__init__(send)
        self.request: dict[str, Any] = {}

    def parse(self, raw: bytes, rec: RequestRecord) -> dict[str, Any]:
        """The chat request for the raw Responses body (a 400 GatewayError when invalid)."""
        original = pipeline.parse_json(raw, rec)
        body = to_chat_request(original)
        self.request = original
        rec.request_raw = orjson.dumps(body)  # the log keeps the chat form
        return body

    def open_stream(self) -> ResponsesEvents:
        return ResponsesEvents(response_id(self.rid.decode("latin-1")) if self.rid else "resp_gateway", self.request)

    def whole(self, status: int, raw: bytes) -> tuple[int, bytes, Headers]:
        if status == 200:
            rid = response_id((self.rid or b"req_gateway").decode("latin-1"))
            try:
                raw = orjson.dumps(to_response(orjson.loads(raw), rid, self.request))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                status, raw = 502, NOT_CHAT
        return status, raw, []


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``POST /v1/responses`` through the chat pipeline."""
    sender = ResponsesSend(send)
    await pipeline.handle(gw, scope, receive, sender, "chat.completions", pipeline.Inbound("responses", sender.parse))
