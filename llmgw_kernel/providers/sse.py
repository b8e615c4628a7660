"""Server-sent events: split an upstream's byte stream into ``data:`` payloads, and frame them back.

Every provider the gateway streams from (OpenAI and compatibles, Azure, Anthropic, Gemini, and
OpenAI's Responses and completions for the pass-through) sends one JSON object per event, and
OpenAI ends with ``[DONE]``. A payload that is neither is an upstream fault, checked here once
for every adapter: :func:`iter_data` raises ``UpstreamError("protocol")``, so a stream that has
not started yet fails over to the next target and one that has ends with the gateway's error
(never a frame dropped in silence, nor broken JSON relayed to the client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from .base import UpstreamError

DONE = b"[DONE]"


async def iter_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data payload (multi-line data joined by newlines), in order.

    Comments, other fields (``event:``, ``id:``, ``retry:``) and events without data are
    dropped; events are split on blank lines whatever the line ending (``\\n``, ``\\r\\n``).
    Raises ``UpstreamError("protocol")`` at a payload that is not a JSON object or ``[DONE]``.
    """
    buf = b""
    async for chunk in chunks:
        buf += chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            event, buf = buf[:end], buf[end + 2 :]
            payload = _payload(event)
            if payload:
                yield _checked(payload)
    if buf.strip():
        payload = _payload(buf)
        if payload:
            yield _checked(payload)


def _payload(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the common case: one data line
    data = [line[5:].lstrip(b" ") if line.startswith(b"data:") else None for line in event.split(b"\n")]
    parts = [d for d in data if d is not None]
    return b"\n".join(parts) if parts else None


def _checked(payload: bytes) -> bytes:
    """``payload`` if it is a JSON object or ``[DONE]`` (else the upstream broke the stream)."""
    if payload == DONE:
        return payload
    try:
        is_object = isinstance(orjson.loads(payload), dict)
    except orjson.JSONDecodeError:
        is_object = False
    if not is_object:
        raise UpstreamError("protocol", f"the upstream sent an unreadable stream event: {payload[:80]!r}")
    return payload


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
