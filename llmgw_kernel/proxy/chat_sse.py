"""The pipeline's chat SSE stream read chunk by chunk, for the translations that turn it into
another API's events (Anthropic's Messages: :mod:`.anthropic_stream`; OpenAI's Responses:
:mod:`.responses_stream`).

The stream is ``data: {chunk}`` frames, ``data: {"error": ...}`` when the upstream fails after
the first byte, and ``data: [DONE]``; bytes arrive in any slicing. A subclass says what one
chunk (a JSON object) becomes and what the end of the stream owes; a payload that is not a JSON
object is skipped, and nothing is read after the translation has ended the stream.
"""

from __future__ import annotations

from typing import Any

import orjson


class ChatChunks:
    """Feed it the chat SSE bytes; it hands each complete chunk to :meth:`_chunk` and the end of
    the stream (``[DONE]``, or :meth:`close` without one) to :meth:`_end`."""

    __slots__ = ("_buf", "_ended")

    def __init__(self) -> None:
        self._buf = b""
        self._ended = False  # set by a subclass when its stream is over (finished, or failed)

    def feed(self, data: bytes) -> bytes:
        """The translated events for the bytes ``data`` (b"" while no frame is complete)."""
        self._buf += data
        out: list[bytes] = []
        while (end := self._buf.find(b"\n\n")) >= 0:
            frame, self._buf = self._buf[:end], self._buf[end + 2 :]
            if frame.startswith(b"data: ") and not self._ended:
                self._payload(frame[6:], out)
        return b"".join(out)

    def close(self) -> bytes:
        """The events still owed when the stream ends (its ``[DONE]`` may never have come)."""
        out: list[bytes] = []
        if not self._ended:
            self._end(out)
        return b"".join(out)

    def _payload(self, payload: bytes, out: list[bytes]) -> None:
        if payload == b"[DONE]":
            self._end(out)
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(chunk, dict):
            self._chunk(chunk, out)

    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        raise NotImplementedError

    def _end(self, out: list[bytes]) -> None:
        raise NotImplementedError
