"""Read deadlines for slow clients: uvicorn's httptools protocol plus two timers.

uvicorn closes idle keep-alive connections, but a client that sends its request slowly — a
header line every few seconds (slowloris), or a body that never completes — holds a
connection (and, for the body, a handler) for as long as it likes. Two deadlines stop that:

- **header deadline**: the request line and headers must be complete within
  ``header_timeout_s`` of the connection opening, or of the first byte of a following
  request on a keep-alive connection. Else the server answers ``408`` (OpenAI error body,
  ``code: request_header_timeout``, ``connection: close``) and closes the connection.
- **body deadline**: the body must be complete within ``body_timeout_s`` of the headers.
  Else the handler's :func:`~llmgw_kernel.proxy.asgi.read_body` answers ``408``
  (``code: request_timeout``; chat and embeddings log it as a row like any refusal) and the
  connection closes after that answer (at the latest ``_GRACE_S`` later). A handler that
  answered without reading the whole body gets its connection closed at the deadline.

A request that arrives whole in one read (almost every request) arms no timer at all: the
timers are armed only when a read ends in the middle of the headers or the body, and once
per connection for the first request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..server import BODY_TIMEOUT_S, HEADER_TIMEOUT_S
from .asgi import BodyDeadlinePassed
from .errors import GatewayError

log = logging.getLogger("llmgw.server")

_GRACE_S = 5.0  # after the body deadline, how long the handler has to answer before the close


def _ignore(deadline: str) -> None:
    pass


class ReadDeadlineProtocol(HttpToolsProtocol):
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    passed: Callable[[str], None] = staticmethod(_ignore)  # told "header" or "body" (metrics)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # a request has begun and its headers are not complete
        self._in_body = False  # headers complete, body not yet
        self._body_late = False  # the handler was told the body missed its deadline

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timers()  # the websocket protocol takes the transport over
        self._in_headers = self._in_body = False
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_headers and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)
        if self._in_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_late_cb)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse: 400 in OpenAI's format, with an x-request-id like
        every other answer (uvicorn's own is plain text), then close."""
        err = GatewayError(400, f"Malformed HTTP request ({msg.rstrip('.')})", code="invalid_http_request")
        self.transport.write(_raw_response(err))
        self.transport.close()

    # -- parser callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        self._in_body = not upgrading
        self._body_late = False

    def on_message_complete(self) -> None:
        if self._body_late:  # too late: the handler has been told (and answers 408)
            return
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # -- deadlines ----------------------------------------------------------------------------

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # a pipelined request is being answered
            cycle.keep_alive = False  # close once it is; read nothing more meanwhile
            self.flow.pause_reading()
            return
        log.info("%s: request headers not complete within %g s; answering 408 and closing",
                 _peer(self.client), self.header_timeout_s)  # fmt: skip
        self.passed("header")
        err = GatewayError(
            408, f"The request headers did not arrive within this gateway's header read deadline "
            f"({self.header_timeout_s:g} s)", code="request_header_timeout",
        )  # fmt: skip
        self.transport.write(_raw_response(err))
        self.transport.close()

    def _body_late_cb(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if not self._in_body or cycle is None or self.transport.is_closing():
            return
        log.info("%s %s %s: request body not complete within %g s", _peer(self.client), self.scope.get("method"),
                 self.scope.get("path"), self.body_timeout_s)  # fmt: skip
        self.passed("body")
        if cycle.response_complete:  # answered without reading the body: drop the rest of it
            self.transport.close()
            return
        cycle.keep_alive = False  # whatever happens, this connection ends with this response
        if not cycle.response_started:
            self._body_late = True
            cycle.more_body = BodyDeadlinePassed(self.body_timeout_s)  # type: ignore[assignment]  # truthy
            cycle.message_event.set()
            self._body_timer = self.loop.call_later(_GRACE_S, self._close_unanswered)

    def _close_unanswered(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_started and not self.transport.is_closing():
            log.warning("%s: no answer %g s after the body deadline; closing", _peer(self.client), _GRACE_S)
            self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "client"


def _raw_response(err: GatewayError) -> bytes:
    from .pipeline import new_request_id

    body = err.body()
    head = [
        STATUS_LINE[err.status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        b"x-request-id: " + new_request_id().encode() + b"\r\n",
        b"\r\n",
    ]
    return b"".join(head) + body


def read_deadline_protocol(
    header_timeout_s: float, body_timeout_s: float, passed: Callable[[str], None] = _ignore
) -> type[ReadDeadlineProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these deadlines (seconds);
    ``passed`` is told which deadline cut a client off."""
    if header_timeout_s <= 0 or body_timeout_s <= 0:
        raise ValueError("read deadlines must be > 0 seconds")
    attrs = {"header_timeout_s": float(header_timeout_s), "body_timeout_s": float(body_timeout_s),
             "passed": staticmethod(passed)}  # fmt: skip
    return type("ReadDeadlineProtocol", (ReadDeadlineProtocol,), attrs)
