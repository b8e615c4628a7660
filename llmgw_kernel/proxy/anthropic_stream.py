"""An OpenAI ``chat.completion.chunk`` stream → Anthropic Messages SSE events.

The pipeline streams OpenAI SSE (``data: {chunk}``, ``data: [DONE]``, and ``data: {"error":
...}`` when the upstream fails after the first byte); :class:`AnthropicEvents` turns those
bytes into the documented event sequence, each with its ``event:`` line (the anthropic SDK
skips events without one)::

    message_start
    content_block_start / content_block_delta (text_delta | input_json_delta) / content_block_stop ...
    message_delta (stop_reason, usage)
    message_stop

OpenAI reports usage only at the end of a stream, so ``message_start`` carries zeros and
``message_delta`` the full usage (input, output and cache tokens; the SDK's accumulated
message takes them from there). A failure mid-stream becomes an ``error`` event, which ends
the stream, as in Anthropic's API.
"""

from __future__ import annotations

from typing import Any

import orjson

from .anthropic_response import anthropic_usage, error_type, message_id, stop_reason
from .chat_sse import ChatChunks


def event(data: dict[str, Any]) -> bytes:
    """One SSE event whose name is the payload's ``type``."""
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream_error(err: dict[str, Any]) -> dict[str, Any]:
    """The ``error`` event for the gateway's mid-stream error body (its code names the status)."""
    code = str(err.get("code") or "")
    status = code.removeprefix("upstream_")
    if code == "guardrail_blocked":  # an output guardrail stopped the answer: the request's fault, not the API's
        kind = "invalid_request_error"
    elif status.isdigit():
        kind = error_type(int(status))
    else:
        kind = "timeout_error" if code == "upstream_timeout" else "api_error"
    return {"type": "error", "error": {"type": kind, "message": str(err.get("message") or "stream failed")}}


class AnthropicEvents(ChatChunks):
    """Translates one response stream; feed it the pipeline's SSE bytes in any slicing."""

    __slots__ = ("_started", "_open", "_open_text", "_blocks", "_tools", "_stop", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._open: int | None = None  # index of the content block being streamed
        self._open_text = False
        self._blocks = 0
        self._tools: dict[int, int] = {}  # OpenAI tool_call index -> content block index
        self._stop: str | None = None
        self._usage: dict[str, Any] | None = None

    # -- one OpenAI payload ----------------------------------------------------------------------
    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        if isinstance(chunk.get("error"), dict):
            self._close_block(out)
            out.append(event(stream_error(chunk["error"])))
            self._ended = True
            return
        if not self._started:
            self._start(out, chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) == 0:
                self._delta(choice.get("delta") or {}, out)
                if choice.get("finish_reason"):
                    self._stop = stop_reason(choice["finish_reason"])
                    self._close_block(out)

    def _start(self, out: list[bytes], chunk: dict[str, Any]) -> None:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": chunk.get("model") or "", "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }  # fmt: skip
        out.append(event({"type": "message_start", "message": message}))

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        text = delta.get("content") or delta.get("refusal")
        if text:
            if not self._open_text:
                self._open_block(out, {"type": "text", "text": ""}, text=True)
            out.append(event({"type": "content_block_delta", "index": self._open,
                              "delta": {"type": "text_delta", "text": text}}))  # fmt: skip
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            k = call.get("index", 0)
            block = self._tools.get(k)
            if block is None:
                tool_id = call.get("id") or f"toolu_{len(self._tools)}"
                tool: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": fn.get("name") or "", "input": {}}
                block = self._tools[k] = self._open_block(out, tool, text=False)
            if fn.get("arguments"):
                out.append(event({"type": "content_block_delta", "index": block,
                                  "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]}}))  # fmt: skip

    def _open_block(self, out: list[bytes], block: dict[str, Any], text: bool) -> int:
        self._close_block(out)
        index = self._open = self._blocks
        self._blocks += 1
        self._open_text = text
        out.append(event({"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(event({"type": "content_block_stop", "index": self._open}))
            self._open = None
            self._open_text = False

    def _end(self, out: list[bytes]) -> None:
        if not self._started:
            self._start(out, {})
        self._close_block(out)
        delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        out.append(event({"type": "message_delta", "delta": delta, "usage": anthropic_usage(self._usage)}))
        out.append(event({"type": "message_stop"}))
        self._ended = True
