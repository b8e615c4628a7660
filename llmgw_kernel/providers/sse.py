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


async def ended(payloads: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``payloads`` of an OpenAI chat or legacy completions stream, as they are; raises
    ``UpstreamError("protocol")`` when the stream ends (even cleanly) without ``[DONE]`` and
    without a ``finish_reason`` in its last chunk that names one: the upstream cut it, and the
    client's SDK would take a half answer for a whole one (the gateway ends it with its error
    frame instead, and logs an upstream error). Responses streams end with their own event
    (``proxy/passthrough_responses.py`` checks it); Anthropic's and Gemini's are read elsewhere.
    """
    done, finishing = False, None
    async for payload in payloads:
        if payload == DONE:
            done = True
        elif b'"finish_reason"' in payload:
            finishing = payload  # the last chunk naming a finish_reason (null while it goes on)
        yield payload
    if not done and not _finishes(finishing):
        raise UpstreamError("protocol", "the upstream's stream ended without `[DONE]` or a `finish_reason`")


def _finishes(payload: bytes | None) -> bool:
    """Whether the chunk ``payload`` ends one of its choices (a ``finish_reason`` that is not null)."""
    chunk = orjson.loads(payload) if payload is not None else None  # an object: iter_data checked it
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


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
