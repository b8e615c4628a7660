"""The response side of an API served in front of the chat pipeline (``/v1/messages``,
``/v1/responses``, ``/v1/completions``): an ASGI ``send`` that hands the client the pipeline's
chat answer in its own API's format.

One state machine for every such API: the response start is held until the answer is known to
be a stream (a 200 ``text/event-stream``: its bytes go through the API's
:class:`StreamTranslator` as they arrive) or a whole body (collected, then translated once by
:meth:`TranslatedSend.whole`, which may change the status and add headers). Each API is a
subclass that says how, in a few lines. The OpenAI chat path never sees these wrappers.
"""

from __future__ import annotations

from typing import Protocol

from .asgi import Message, Send

Headers = list[tuple[bytes, bytes]]


class StreamTranslator(Protocol):
    """Turns a chat SSE stream into another API's stream, chunk by chunk."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


class TranslatedSend:
    """An ASGI ``send`` translating the pipeline's chat answers (see the module's docstring).
    ``rid`` is the request id the pipeline answered with (``x-llmgw-request-id``), once the
    response has started."""

    __slots__ = ("_send", "_start", "_parts", "_stream", "rid")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._parts: list[bytes] = []
        self._stream: StreamTranslator | None = None
        self.rid = b""

    def open_stream(self) -> StreamTranslator:
        """The translator of a streamed 200 answer."""
        raise NotImplementedError

    def stream_headers(self) -> Headers:
        """Headers added to a streamed answer's start."""
        return []

    def whole(self, status: int, raw: bytes) -> tuple[int, bytes, Headers]:
        """(status, body, added headers) of a whole answer ``raw`` given with ``status``."""
        raise NotImplementedError

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            sse = False
            for key, value in message["headers"]:
                if key == b"x-llmgw-request-id":
                    self.rid = value
                elif key == b"content-type":
                    sse = value.startswith(b"text/event-stream")
            if sse and message["status"] == 200:
                self._stream = self.open_stream()
                extra = self.stream_headers()
                await self._send({**message, "headers": [*message["headers"], *extra]} if extra else message)
            else:
                self._start, self._parts = message, []
            return
        if kind != "http.response.body":
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self._stream is not None:
            out = self._stream.feed(body)
            if not more:
                out += self._stream.close()
            if out or not more:
                await self._send({"type": "http.response.body", "body": out, "more_body": more})
            return
        self._parts.append(body)
        if not more:
            await self._send_whole(b"".join(self._parts))

    async def _send_whole(self, raw: bytes) -> None:
        start = self._start
        assert start is not None, "response body before its start"
        status, body, extra = self.whole(start["status"], raw)
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers += [(b"content-length", str(len(body)).encode()), *extra]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


#: a whole 200 answer that is not a chat completion (the translation cannot read it)
NOT_CHAT = b'{"error": {"message": "the upstream answer is not a chat completion", "type": "server_error"}}'
