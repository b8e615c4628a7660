"""Server-sent events: split an upstream's byte stream into ``data:`` events, and frame them back.

Every provider the gateway streams from (OpenAI and compatibles, Azure, Anthropic, Gemini, and
OpenAI's Responses and completions for the pass-through) sends one JSON object per event, and
OpenAI ends with ``[DONE]``. A payload that is neither is an upstream fault, checked here once
for every adapter: :class:`Splitter` raises ``UpstreamError("protocol")``, so a stream that has
not started yet fails over to the next target and one that has ends with the gateway's error
(never a frame dropped in silence, nor broken JSON relayed to the client).

Each payload is parsed once, here: an event is the payload's bytes (relayed as they are) with
the object they hold (``None`` for ``[DONE]``), which the adapters read instead of parsing again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from .base import UpstreamError

DONE = b"[DONE]"

#: one event: its data payload as sent, and the JSON object it holds (None: ``[DONE]``)
Event = tuple[bytes, dict[str, Any] | None]


class Splitter:
    """Events of an SSE byte stream fed chunk by chunk, in order.

    Comments, other fields (``event:``, ``id:``, ``retry:``) and events without data are
    dropped; events are split on blank lines whatever the line ending (``\\n``, ``\\r\\n``), and
    multi-line data is joined by newlines. Iterating :meth:`feed` raises
    ``UpstreamError("protocol")`` at a payload that is not a JSON object or ``[DONE]``, after the
    events before it (a client already sent those keeps them).
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> Iterator[Event]:
        """The events ``chunk`` completes (what is left waits for the next chunk)."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        start = 0
        try:
            while (end := buf.find(b"\n\n", start)) >= 0:
                payload = _payload(buf[start:end])
                start = end + 2
                if payload:
                    yield _event(payload)
        finally:
            self._buf = buf[start:]

    def close(self) -> Iterator[Event]:
        """The last event, when the stream ended without a blank line after it."""
        buf, self._buf = self._buf, b""
        payload = _payload(buf) if buf.strip() else None
        if payload:
            yield _event(payload)


class StreamEnd:
    """Whether an OpenAI chat or legacy completions stream ended as a whole one does: with
    ``[DONE]``, or with a ``finish_reason`` (not null) in the last chunk that names one.

    :meth:`check` raises ``UpstreamError("protocol")`` for a stream that ended (even cleanly)
    otherwise: the upstream cut it, and the client's SDK would take a half answer for a whole one
    (the gateway ends it with its error frame instead, and logs an upstream error). Responses
    streams end with their own event (``proxy/passthrough_responses.py`` checks it); Anthropic's
    and Gemini's are read by their translators.
    """

    __slots__ = ("done", "finished")

    def __init__(self) -> None:
        self.done = False
        self.finished = False

    def see(self, chunk: dict[str, Any] | None) -> None:
        """Note one event's object (None: ``[DONE]``)."""
        if chunk is None:
            self.done = True
            return
        choices = chunk.get("choices")
        if choices and isinstance(choices, list):
            named = finished = False
            for c in choices:
                if isinstance(c, dict) and "finish_reason" in c:
                    named = True
                    finished = finished or bool(c["finish_reason"])
            if named:  # the last chunk naming a finish_reason decides (null while the answer goes on)
                self.finished = finished

    def check(self) -> None:
        if not (self.done or self.finished):
            raise UpstreamError("protocol", "the upstream's stream ended without `[DONE]` or a `finish_reason`")


async def payloads(events: AsyncIterator[Event], end: StreamEnd | None = None) -> AsyncIterator[bytes]:
    """The payloads of ``events``, as they are; with ``end``, checked to end as a whole stream."""
    if end is None:
        async for payload, _ in events:
            yield payload
        return
    async for payload, chunk in events:
        end.see(chunk)
        yield payload
    end.check()


def _payload(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the common case: one data line
    data = [line[5:].lstrip(b" ") if line.startswith(b"data:") else None for line in event.split(b"\n")]
    parts = [d for d in data if d is not None]
    return b"\n".join(parts) if parts else None


def _event(payload: bytes) -> Event:
    """``payload`` with its object, if it is a JSON object or ``[DONE]`` (else the upstream broke the stream)."""
    if payload == DONE:
        return payload, None
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError("protocol", f"the upstream sent an unreadable stream event: {payload[:80]!r}")
    return payload, value


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
