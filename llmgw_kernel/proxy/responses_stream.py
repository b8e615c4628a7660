"""An OpenAI ``chat.completion.chunk`` stream → Responses API SSE events.

:class:`ResponsesEvents` turns the pipeline's chat SSE bytes (in any slicing) into the event
sequence OpenAI documents and its SDK reads, each with its ``event:`` line and a
``sequence_number``::

    response.created, response.in_progress
    per output item: response.output_item.added
        text:  response.content_part.added, response.output_text.delta ..., response.output_text.done,
               response.content_part.done
        tool:  response.function_call_arguments.delta ..., response.function_call_arguments.done
    response.output_item.done
    response.completed (or response.incomplete), with the whole response and its usage

A failure after the first byte (the pipeline's ``data: {"error": ...}``) becomes an ``error``
event followed by ``response.failed``, which end the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from .chat_sse import ChatChunks
from .responses_response import finish, function_call_item, message_item, output_text, responses_usage, shell


class ResponsesEvents(ChatChunks):
    """Translates one response stream for the request ``request`` answered as ``rid``."""

    __slots__ = ("_rid", "_request", "_seq", "_resp", "_text", "_texts", "_tools", "_open", "_finish", "_usage")

    def __init__(self, rid: str, request: dict[str, Any]) -> None:
        super().__init__()
        self._rid, self._request = rid, request
        self._seq = 0
        self._resp: dict[str, Any] | None = None
        self._text: dict[str, Any] | None = None  # the message item being streamed
        self._texts: list[str] = []  # its text so far
        self._tools: dict[int, dict[str, Any]] = {}  # chat tool_call index -> function_call item
        self._open: dict[str, Any] | None = None  # the output item being streamed
        self._finish: Any = None
        self._usage: dict[str, Any] | None = None

    def _event(self, out: list[bytes], kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    # -- one chat payload ---------------------------------------------------------------------
    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        if self._resp is None:
            self._start(out, chunk.get("model") or "")
        if isinstance(chunk.get("error"), dict):
            self._fail(out, chunk["error"])
            return
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) == 0:
                self._delta(choice.get("delta") or {}, out)
                if choice.get("finish_reason"):
                    self._finish = choice["finish_reason"]

    def _start(self, out: list[bytes], model: str) -> None:
        self._resp = shell(self._rid, self._request, model, "in_progress")
        self._event(out, "response.created", response=self._resp)
        self._event(out, "response.in_progress", response=self._resp)

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        text = delta.get("content") or delta.get("refusal")
        if text:
            if self._text is None or self._text is not self._open:  # text again after a tool call: a new item
                n = sum(o["type"] == "message" for o in self._resp["output"]) if self._resp else 0
                self._text = self._add(out, message_item(self._rid, "", "in_progress", n))
                self._texts = []
                self._event(out, "response.content_part.added", item_id=self._text["id"], output_index=self._index(),
                            content_index=0, part=output_text(""))  # fmt: skip
            self._texts.append(text)
            self._event(out, "response.output_text.delta", item_id=self._text["id"], output_index=self._index(),
                        content_index=0, delta=text, logprobs=[])  # fmt: skip
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            k = call.get("index", 0)
            item = self._tools.get(k)
            if item is None:
                n = len(self._tools)
                new = function_call_item(self._rid, n, call.get("id") or f"call_{n}", fn.get("name") or "", "",
                                         "in_progress")  # fmt: skip
                item = self._tools[k] = self._add(out, new)
            if fn.get("arguments"):
                item["arguments"] += fn["arguments"]
                self._event(out, "response.function_call_arguments.delta", item_id=item["id"],
                            output_index=self._index(), delta=fn["arguments"])  # fmt: skip

    def _index(self) -> int:
        assert self._resp is not None
        return len(self._resp["output"]) - 1

    def _add(self, out: list[bytes], item: dict[str, Any]) -> dict[str, Any]:
        """Open ``item`` as the next output item (closing the one before)."""
        assert self._resp is not None
        self._close_item(out)
        self._resp["output"].append(item)
        self._open = item
        self._event(out, "response.output_item.added", output_index=self._index(), item=item)
        return item

    def _close_item(self, out: list[bytes]) -> None:
        item, self._open = self._open, None
        if item is None or self._resp is None:
            return
        index = self._resp["output"].index(item)
        if item["type"] == "message":
            text = "".join(self._texts)
            part = output_text(text)
            self._event(out, "response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                        text=text, logprobs=[])  # fmt: skip
            self._event(out, "response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                        part=part)  # fmt: skip
            item.update(content=[part])
        else:
            self._event(out, "response.function_call_arguments.done", item_id=item["id"], output_index=index,
                        name=item["name"], arguments=item["arguments"])  # fmt: skip
        item["status"] = "completed"
        self._event(out, "response.output_item.done", output_index=index, item=item)

    def _end(self, out: list[bytes]) -> None:
        if self._resp is None:
            self._start(out, "")
        assert self._resp is not None
        self._close_item(out)
        finish(self._resp, self._finish)
        self._resp["usage"] = responses_usage(self._usage)
        kind = "response.completed" if self._resp["status"] == "completed" else "response.incomplete"
        self._event(out, kind, response=self._resp)
        self._ended = True

    def _fail(self, out: list[bytes], err: dict[str, Any]) -> None:
        assert self._resp is not None
        if self._open is not None and self._open["type"] == "message":  # what came before the failure
            self._open.update(content=[output_text("".join(self._texts))], status="incomplete")
        message = str(err.get("message") or "stream failed")
        code = str(err.get("code") or "server_error")
        self._event(out, "error", code=code, message=message, param=err.get("param"))
        self._resp.update(status="failed", error={"code": code, "message": message})
        self._event(out, "response.failed", response=self._resp)
        self._ended = True
