"""The few ASGI primitives the handlers need: read a bounded body, send a response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import GatewayError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientDisconnected(Exception):
    """The client went away while we were reading its request."""


class BodyDeadlinePassed:
    """The ``more_body`` value of the message the server (``proxy/read_deadlines.py``) hands
    the app when a request's body has not arrived within the body read deadline. Truthy, so
    code that only tests ``more_body`` keeps waiting; :func:`read_body` answers 408."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"BodyDeadlinePassed({self.seconds})"


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def headers_dict(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


async def read_body(receive: Receive, limit: int, content_length: bytes | None) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed ``limit`` bytes."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise GatewayError(400, "Invalid Content-Length header") from None
        if declared > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    more = message.get("more_body")
    if not more:
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while True:
        if more.__class__ is BodyDeadlinePassed:
            raise _too_slow(more.seconds)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        more = message.get("more_body")
        if not more:
            return b"".join(parts)


def _too_slow(seconds: float) -> GatewayError:
    return GatewayError(
        408, f"The request body did not arrive within this gateway's body read deadline ({seconds:g} s)",
        code="request_timeout", headers=[(b"connection", b"close")],
    )  # fmt: skip


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"Request body is larger than this gateway's limit of {limit} bytes", code="request_too_large"
    )


async def send_bytes(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_bytes(send, status, body, [JSON, *extra])


async def send_error(send: Send, err: GatewayError, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_json(send, err.status, err.body(), extra)
