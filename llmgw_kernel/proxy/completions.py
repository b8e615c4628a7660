"""``POST /v1/completions`` (OpenAI's legacy text completions), served by the one pipeline on
a chat form of the request, for every provider kind.

The pipeline's cache, guardrails, token counts, log and replay all read chat requests and
answers, so the request is translated to chat (the log row says ``api='completions'``). An
attempt on an ``openai``/``azure`` target passes the client's body through to the provider's
``/completions`` (:mod:`.passthrough_completions`), so models only behind it
(``gpt-3.5-turbo-instruct``, base models on vLLM) are reached there; other kinds get the chat
form, the prompt answered as one user turn. docs/providers.md lists what is kept, dropped and
refused.

Request: ``prompt`` (a string, or an array of one string) → one user message; ``max_tokens``
defaults to 16 as in OpenAI's API; the sampling fields pass as they are; ``suffix``,
``echo: true``, ``logprobs``, ``best_of > 1`` and token-array prompts are refused (400) —
chat has no equivalent. Answer: ``message.content`` → ``text`` per choice; streams map chunk
by chunk (``delta.content`` → ``text``), ``[DONE]`` and the gateway's error events unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..providers.engine import STR, Shape, shape_error
from . import pipeline
from .asgi import Receive, Scope, Send
from .errors import GatewayError
from .passthrough import Passthrough
from .passthrough_completions import CompletionsDialect, Relay, patched
from .runtime import Gateway
from .translated_send import NOT_CHAT, Headers, TranslatedSend

#: fields passed to the chat request as they are (validated there as chat's: ``validate.check_chat``)
PASSED = ("model", "max_tokens", "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
          "logit_bias", "seed", "user", "stream", "stream_options", "metadata")  # fmt: skip
#: fields refused unless unset (or at their no-op value), with why
REFUSED = {
    "suffix": "chat has no insertion (fill-in-the-middle) mode",
    "echo": "chat does not return the prompt",
    "logprobs": "the translation returns no logprobs",
    "best_of": "chat cannot rank server-side candidates",
}
_NOOP = {"echo": False, "best_of": 1}
_PROMPT = Shape((str, list), "a string or an array of one string", items=STR)
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


def invalid(message: str, param: str, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def to_chat_request(body: Any, native: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The chat request for a legacy completions request (a 400 naming the field if refused; with
    ``native``, a field only pass-through can serve is noted there, (param, why), and left out)."""
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object", code="invalid_request")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in PASSED:
            out[name] = value
        elif name == "prompt":
            continue
        elif name in REFUSED:
            if value is not None and value != _NOOP.get(name):
                message = f"'{name}' is not supported by this gateway: {REFUSED[name]}"
                if native is None:
                    raise invalid(message, name, "unsupported_parameter")
                native.append((name, message))
        elif native is None:
            raise invalid(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
        else:
            native.append((name, f"Unknown parameter: '{name}'."))
    prompt = body.get("prompt")
    if prompt is None:
        raise invalid("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if (err := shape_error(prompt, _PROMPT, "prompt")) is not None:
        raise invalid(err.message + " (token arrays are not supported)", err.param, "invalid_type")
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise invalid("'prompt' must be one string: batches of prompts are not supported", "prompt")
        prompt = prompt[0]
    out["messages"] = [{"role": "user", "content": prompt}]
    if out.get("max_tokens") is None:
        out["max_tokens"] = DEFAULT_MAX_TOKENS
    return out


def completion_id(chat_id: Any) -> str:
    text = chat_id if isinstance(chat_id, str) and chat_id else "gateway"
    return text if text.startswith("cmpl-") else "cmpl-" + text.removeprefix("chatcmpl-")


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or message.get("refusal") or ""


def to_completion(chat: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` as a ``text_completion`` (every choice)."""
    choices = [
        {"text": _text(c.get("message") or {}), "index": c.get("index", i), "logprobs": None,
         "finish_reason": c.get("finish_reason")}
        for i, c in enumerate(chat.get("choices") or []) if isinstance(c, dict)
    ]  # fmt: skip
    out = {"id": completion_id(chat.get("id")), "object": "text_completion", "created": chat.get("created") or 0,
           "model": chat.get("model") or "", "choices": choices}  # fmt: skip
    if chat.get("usage"):
        out["usage"] = chat["usage"]
    return out


def to_completion_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion.chunk`` as a streamed ``text_completion``."""
    choices = [
        {"text": (c.get("delta") or {}).get("content") or "", "index": c.get("index", 0), "logprobs": None,
         "finish_reason": c.get("finish_reason")}
        for c in chunk.get("choices") or () if isinstance(c, dict)
    ]  # fmt: skip
    out = {"id": completion_id(chunk.get("id")), "object": "text_completion", "created": chunk.get("created") or 0,
           "model": chunk.get("model") or "", "choices": choices}  # fmt: skip
    if "usage" in chunk:
        out["usage"] = chunk["usage"]
    return out


def _stream_frame(frame: bytes) -> bytes:
    """One SSE frame of the chat stream, translated (errors and ``[DONE]`` unchanged)."""
    if not frame.startswith(b"data: {"):
        return frame + b"\n\n"
    try:
        chunk = orjson.loads(frame[6:])
    except orjson.JSONDecodeError:
        return frame + b"\n\n"
    if not isinstance(chunk, dict) or "error" in chunk:
        return frame + b"\n\n"
    return b"data: " + orjson.dumps(to_completion_chunk(chunk)) + b"\n\n"


class _Frames:
    """A chat SSE stream translated frame by frame (a frame split across chunks waits for its end)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> bytes:
        frames = (self._buf + data).split(b"\n\n")
        self._buf = frames.pop()
        return b"".join(_stream_frame(f) for f in frames if f)

    def close(self) -> bytes:
        rest, self._buf = self._buf, b""
        return _stream_frame(rest) if rest else b""


class CompletionsSend(TranslatedSend):
    """An ASGI ``send`` that turns the pipeline's chat answers into text completions (or relays
    the upstream's own, when the attempt that answered passed through)."""

    __slots__ = ("passthrough",)

    def __init__(self, send: Send, passthrough: Passthrough) -> None:
        super().__init__(send)
        self.passthrough = passthrough

    def open_stream(self) -> _Frames | Relay:
        if self.passthrough.events is not None:
            return Relay(self.passthrough.events)
        return _Frames()

    def whole(self, status: int, raw: bytes) -> tuple[int, bytes, Headers]:
        pt = self.passthrough
        if status == 200 and pt.answer is not None:
            return status, pt.answer if raw == pt.answer_chat else patched(pt.answer, raw), []
        if status == 200:
            try:
                raw = orjson.dumps(to_completion(orjson.loads(raw)))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                status, raw = 502, NOT_CHAT
        return status, raw, []


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``POST /v1/completions`` through the chat pipeline (passed through per attempt
    on ``openai``/``azure`` targets: :mod:`.passthrough_completions`)."""
    passthrough = Passthrough(CompletionsDialect(), gw.snapshot)
    inbound = pipeline.Inbound("completions", passthrough.parse, passthrough)
    await pipeline.handle(gw, scope, receive, CompletionsSend(send, passthrough), "chat.completions", inbound)
