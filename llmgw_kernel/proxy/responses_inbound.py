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
from .asgi import Message, Receive, Scope, Send
from .responses_request import to_chat_request
from .responses_response import response_id, to_response
from .responses_stream import ResponsesEvents
from .runtime import Gateway

_NOT_CHAT = b'{"error": {"message": "the upstream answer is not a chat completion", "type": "server_error"}}'


class ResponsesSend:
    """An ASGI ``send`` that turns the pipeline's chat responses into Responses ones; its
    :meth:`parse` is the request side (it keeps the original request, echoed in the answer)."""

    __slots__ = ("_send", "_start", "_parts", "_events", "request")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._parts: list[bytes] = []
        self._events: ResponsesEvents | None = None
        self.request: dict[str, Any] = {}

    def parse(self, raw: bytes, rec: RequestRecord) -> dict[str, Any]:
        """The chat request for the raw Responses body (a 400 GatewayError when invalid)."""
        original = pipeline.parse_json(raw, rec)
        body = to_chat_request(original)
        self.request = original
        rec.request_raw = orjson.dumps(body)  # the log keeps the chat form
        return body

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            sse = rid = None
            for key, value in message["headers"]:
                if key == b"x-llmgw-request-id":
                    rid = response_id(value.decode("latin-1"))
                elif key == b"content-type":
                    sse = value.startswith(b"text/event-stream")
            if sse and message["status"] == 200:
                self._events = ResponsesEvents(rid or "resp_gateway", self.request)
                await self._send(message)
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
        if status == 200:
            rid = next((v for k, v in start["headers"] if k == b"x-llmgw-request-id"), b"req_gateway")
            try:
                raw = orjson.dumps(to_response(orjson.loads(raw), response_id(rid.decode("latin-1")), self.request))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                status, raw = 502, _NOT_CHAT
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": raw})


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``POST /v1/responses`` through the chat pipeline."""
    sender = ResponsesSend(send)
    await pipeline.handle(gw, scope, receive, sender, "chat.completions", pipeline.Inbound("responses", sender.parse))
