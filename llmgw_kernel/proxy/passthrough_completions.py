"""Legacy completions' part of the pass-through (:mod:`.passthrough`): the forwarded body, the
upstream's ``text_completion`` read as chat for the pipeline, and the client's stream relayed
from the upstream's own chunks.

So a model only behind ``/completions`` (``gpt-3.5-turbo-instruct``, base models on vLLM) is
reached on ``openai``/``azure`` targets, and ``suffix``, ``echo``, ``logprobs``, ``best_of``
(refused by the translation) are served there. Each upstream chunk becomes one chat chunk
naming its position (``x_native``); the client gets the upstream's chunks as they are unless
the stream guard held back or redacted their text, in which case one chunk with the released
text (``logprobs`` null) stands for the ones it covers. The usage-only chunk the gateway asked
for (to cost the stream) is not relayed unless the client asked for it too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..providers import StreamReply
from ..providers.http import loads_object
from ..providers.sse import DONE
from .passthrough import Lenient, Passthrough, apply_changes, upstream_failure
from .passthrough_guard import Guarded


class CompletionsDialect:
    endpoint = "completions"

    def translate(self, body: Any) -> tuple[dict[str, Any], Lenient]:
        from .completions import to_chat_request  # completions.py serves the API through this module

        lenient = Lenient()
        chat = to_chat_request(body, lenient.native)
        source = ("prompt", 0) if isinstance(body.get("prompt"), list) else ("prompt",)
        lenient.slots.append(((0, "content"), source))
        return chat, lenient

    def guard_native(self, raw: bytes, guard: Any) -> Guarded:
        """A text completion holds no text its chat form does not (the pipeline checks them all)."""
        return Guarded(raw)

    def forward(self, pt: Passthrough, messages: list[Any]) -> dict[str, Any]:
        body = orjson.loads(orjson.dumps(pt.request))
        apply_changes(body, pt.forwarded_messages(messages))
        body.pop("metadata", None)  # the gateway's, as for chat
        return body

    def to_chat(self, raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
        answer = loads_object(raw) or {}
        listed = answer.get("choices")
        if not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed):
            raise upstream_failure("the upstream answer is not a `text_completion` (`choices`: a list of objects)")
        choices = [
            {"index": c.get("index", i), "message": {"role": "assistant", "content": c.get("text") or ""},
             "finish_reason": c.get("finish_reason")}
            for i, c in enumerate(listed)
        ]  # fmt: skip
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else None
        chat = {"id": answer.get("id"), "object": "chat.completion", "created": answer.get("created") or 0,
                "model": answer.get("model") or "", "choices": choices, "usage": usage}  # fmt: skip
        return orjson.dumps(chat), usage

    async def chat_events(
        self, payloads: AsyncIterator[bytes], pt: Passthrough, reply: StreamReply
    ) -> AsyncIterator[bytes]:
        events = pt.events if pt.events is not None else []
        async for payload in payloads:
            if payload == DONE:
                yield DONE
                continue
            chunk = loads_object(payload)
            if chunk is None:
                continue
            usage = chunk.get("usage")
            if usage:
                reply.usage = usage
            only_usage = bool(usage) and not chunk.get("choices")
            events.append((b"" if only_usage and pt.include_usage else payload, chunk))
            choices = [
                {"index": c.get("index", 0), "delta": {"content": c.get("text") or ""},
                 "finish_reason": c.get("finish_reason")}
                for c in chunk.get("choices") or () if isinstance(c, dict)
            ]  # fmt: skip
            out = {"id": chunk.get("id"), "object": "chat.completion.chunk", "model": chunk.get("model"),
                   "x_native": len(events) - 1, "choices": choices}  # fmt: skip
            if usage:
                out["usage"] = usage
            yield orjson.dumps(out)


def patched(raw: bytes, chat: bytes) -> bytes:
    """The upstream's ``text_completion`` with each choice's text from ``chat`` (its guarded chat form)."""
    answer = orjson.loads(raw)
    texts = {c.get("index", i): (c.get("message") or {}).get("content") or ""
             for i, c in enumerate(orjson.loads(chat).get("choices") or ())}  # fmt: skip
    for i, choice in enumerate(answer.get("choices") or ()):
        index = choice.get("index", i)
        if index in texts and choice.get("text") != texts[index]:
            choice["text"], choice["logprobs"] = texts[index], None
    return orjson.dumps(answer)


class Relay:
    """The client's stream of a passed-through completions request (see the module docstring)."""

    __slots__ = ("_events", "_buf", "_next", "_pending", "_last")

    def __init__(self, events: list[tuple[bytes, dict[str, Any]]]) -> None:
        self._events = events
        self._buf = b""
        self._next = 0
        self._pending: list[tuple[bytes, dict[str, Any]]] = []  # upstream chunks whose text is not yet released
        self._last: dict[str, Any] = {}

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out: list[bytes] = []
        while (end := self._buf.find(b"\n\n")) >= 0:
            frame, self._buf = self._buf[:end], self._buf[end + 2 :]
            if frame.startswith(b"data: "):
                self._frame(frame, out)
        return b"".join(out)

    def close(self) -> bytes:
        return b""

    def _frame(self, frame: bytes, out: list[bytes]) -> None:
        chunk = loads_object(frame[6:]) if frame.startswith(b"data: {") else None
        if chunk is None or "error" in chunk:  # [DONE] and the gateway's error events, as they are
            out.append(frame + b"\n\n")
            return
        last = chunk.get("x_native")
        upto = last + 1 if isinstance(last, int) else self._next
        self._pending += self._events[self._next : upto]
        self._next = max(self._next, upto)
        released = {c.get("index", 0): (c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or ()}
        source: dict[int, str] = {}
        for _, native in self._pending:
            for c in native.get("choices") or ():
                source[c.get("index", 0)] = source.get(c.get("index", 0), "") + (c.get("text") or "")
        if {i: t for i, t in released.items() if t} == {i: t for i, t in source.items() if t}:
            out += [b"data: " + p + b"\n\n" for p, _ in self._pending if p]
        elif self._pending or released:
            template = self._pending[-1][1] if self._pending else self._last
            choices = [{"text": (c.get("delta") or {}).get("content") or "", "index": c.get("index", 0),
                        "logprobs": None, "finish_reason": c.get("finish_reason")}
                       for c in chunk.get("choices") or ()]  # fmt: skip
            rebuilt = {k: v for k, v in template.items() if k not in ("choices", "usage")}
            out.append(b"data: " + orjson.dumps({**rebuilt, "choices": choices}) + b"\n\n")
        if self._pending:
            self._last = self._pending[-1][1]
        self._pending = []
