"""Server-sent events: split a byte stream into ``data:`` payloads, and frame them back."""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = b"[DONE]"


async def iter_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data payload (multi-line data joined by newlines), in order.

    Comments and other fields (``event:``, ``id:``, ``retry:``) are dropped; events are
    split on blank lines whatever the line ending (``\\n``, ``\\r\\n``).
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
            if payload is not None:
                yield payload
    if buf.strip():
        payload = _payload(buf)
        if payload is not None:
            yield payload


def _payload(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the common case: one data line
    data = [line[5:].lstrip(b" ") if line.startswith(b"data:") else None for line in event.split(b"\n")]
    parts = [d for d in data if d is not None]
    return b"\n".join(parts) if parts else None


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
