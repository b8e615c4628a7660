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

An attempt on an ``openai`` or ``azure`` target passes the request through to the provider's
own ``/responses`` instead (:mod:`.passthrough`, :mod:`.passthrough_responses`); the client
then gets the upstream's response or events, and the pipeline still sees chat.

The OpenAI chat path pays nothing for this: it never sees these wrappers.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..log.record import RequestRecord
from . import pipeline
from .asgi import Receive, Scope, Send
from .passthrough import Passthrough
from .passthrough_responses import Relay, ResponsesDialect, patched
from .responses_response import response_id, to_response
from .responses_stream import ResponsesEvents
from .runtime import Gateway
from .translated_send import NOT_CHAT, Headers, TranslatedSend


class ResponsesSend(TranslatedSend):
    """An ASGI ``send`` that turns the pipeline's chat responses into Responses ones; its
    :meth:`parse` is the request side (it keeps the original request, echoed in the answer).
    The gateway's errors are in OpenAI's format already and pass unchanged."""

    __slots__ = ("passthrough",)

    def __init__(self, send: Send, passthrough: Passthrough) -> None:
        super().__init__(send)
        self.passthrough = passthrough

    def parse(self, raw: bytes, rec: RequestRecord) -> dict[str, Any]:
        """The chat request for the raw Responses body (a 400 GatewayError when invalid); the log keeps it."""
        return self.passthrough.parse(raw, rec)

    @property
    def request(self) -> dict[str, Any]:
        return self.passthrough.request

    def open_stream(self) -> ResponsesEvents | Relay:
        if self.passthrough.events is not None:  # the attempt that answered passed through
            return Relay(self.passthrough.events)
        return ResponsesEvents(response_id(self.rid.decode("latin-1")) if self.rid else "resp_gateway", self.request)

    def whole(self, status: int, raw: bytes) -> tuple[int, bytes, Headers]:
        pt = self.passthrough
        if status == 200 and pt.answer is not None:  # passed through: the upstream's own, redactions put back
            return status, pt.answer if raw == pt.answer_chat else patched(pt.answer, raw), []
        if status == 200:
            rid = response_id((self.rid or b"req_gateway").decode("latin-1"))
            try:
                raw = orjson.dumps(to_response(orjson.loads(raw), rid, self.request))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                status, raw = 502, NOT_CHAT
        return status, raw, []


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``POST /v1/responses`` through the chat pipeline."""
    passthrough = Passthrough(RESPONSES, gw.snapshot)
    sender = ResponsesSend(send, passthrough)
    inbound = pipeline.Inbound("responses", sender.parse, passthrough)
    await pipeline.handle(gw, scope, receive, sender, "chat.completions", inbound)


RESPONSES = ResponsesDialect()
