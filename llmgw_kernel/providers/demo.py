"""``kind: demo`` — a built-in offline model, so the whole loop works before any setup.

Chat answers echo a short summary of the last user message, deterministically; usage is a
whitespace token count. Streams send the answer a few words per chunk. Embeddings are
unit vectors derived from a hash of the text: stable and cheap, useful for wiring and
tests, meaningless as semantics; ``encoding_format`` (float, base64) and ``dimensions`` are
honoured as OpenAI does.

Knobs in the target's model name simulate upstream behaviour, deterministically, for demos,
notebooks and routing what-ifs (docs/providers.md):

- ``slow-<N>ms`` (e.g. ``demo-large-slow-40ms``): every answer waits N ms first;
- ``flaky-<P>pct`` (e.g. ``demo-small-flaky-10pct``): P% of requests fail with a 503. Which
  ones is a hash of the request body (messages, user, ...), so the same request fails the
  same way every time (a retry on the same target fails again; a fallback helps).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..policy.model import Provider, Target
from .base import AdapterContext, Reply, StreamReply, UpstreamError, encode_embedding

EMBED_DIM = 384
_SLOW = re.compile(r"slow-(\d+)ms")
_FLAKY = re.compile(r"flaky-(\d+)pct")


async def _simulate(model: str, body: dict[str, Any]) -> None:
    """Apply the model name's ``slow-<N>ms`` / ``flaky-<P>pct`` knobs (no-op without them)."""
    slow = _SLOW.search(model)
    if slow:
        await asyncio.sleep(int(slow.group(1)) / 1000)
    flaky = _FLAKY.search(model)
    if flaky:
        blob = orjson.dumps({k: v for k, v in body.items() if k != "model"}, option=orjson.OPT_SORT_KEYS)
        if int(_digest(model.encode().hex() + blob.decode())[:8], 16) % 100 < int(flaky.group(1)):
            raise UpstreamError("http", f"demo: simulated failure ({flaky.group(0)})", 503)


class DemoAdapter:
    def __init__(self, name: str, provider: Provider, ctx: AdapterContext) -> None:
        self.name = name
        self.provider = provider

    def unavailable_reason(self) -> str | None:
        return None

    async def chat(self, body: dict[str, Any], target: Target) -> Reply:
        await _simulate(target.model, body)
        text, prompt_tokens = _answer(body)
        usage = _usage(prompt_tokens, text)
        reply = {
            "id": "chatcmpl-demo-" + _digest(text)[:20],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }
        return Reply(orjson.dumps(reply), usage)

    async def chat_stream(self, body: dict[str, Any], target: Target, include_usage: bool) -> StreamReply:
        await _simulate(target.model, body)
        text, prompt_tokens = _answer(body)
        reply = StreamReply(_stream(text, target.model, prompt_tokens, include_usage), _usage(prompt_tokens, text))
        return reply

    async def embeddings(self, body: dict[str, Any], target: Target) -> Reply:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise UpstreamError("http", "input must be a string or a non-empty list of strings", 400)
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise UpstreamError("http", "encoding_format must be float or base64", 400, param="encoding_format")
        dims = body.get("dimensions")
        if dims is not None and (type(dims) is not int or not 1 <= dims <= EMBED_DIM):
            raise UpstreamError("http", f"dimensions must be an integer from 1 to {EMBED_DIM}", 400, param="dimensions")
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            tokens += _count(text)
            data.append({"object": "embedding", "index": i, "embedding": encode_embedding(_embed(text, dims), fmt)})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Reply(orjson.dumps({"object": "list", "data": data, "model": target.model, "usage": usage}), usage)


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _answer(body: dict[str, Any]) -> tuple[str, int]:
    prompt = _last_user_text(body)
    words = prompt.split()
    summary = " ".join(words[:24]) + (" ..." if len(words) > 24 else "")
    text = f"[llmgw demo] You said: {summary}" if summary else "[llmgw demo] Hello! Send me a message."
    prompt_tokens = 0
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            content = m.get("content")
            prompt_tokens += _count(content if isinstance(content, str) else orjson.dumps(content).decode())
    return text, prompt_tokens


def _count(text: str) -> int:
    return max(1, len(text.split()))


def _usage(prompt_tokens: int, text: str) -> dict[str, int]:
    completion = _count(text)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _embed(text: str, dims: int | None = None) -> list[float]:
    """The text's unit vector; ``dims``: its first ``dims`` values, normalised again (as OpenAI
    shortens an embedding)."""
    raw = hashlib.shake_256(text.encode()).digest(EMBED_DIM * 2)
    values = [v / 32768.0 for v in struct.unpack(f"<{EMBED_DIM}h", raw)][: dims or EMBED_DIM]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


async def _stream(text: str, model: str, prompt_tokens: int, include_usage: bool) -> AsyncIterator[bytes]:
    head = {
        "id": "chatcmpl-demo-" + _digest(text)[:20],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    words = text.split(" ")
    yield orjson.dumps(
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    )
    for i in range(0, len(words), 4):
        piece = " ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "")
        yield orjson.dumps({**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    yield orjson.dumps({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        yield orjson.dumps({**head, "choices": [], "usage": _usage(prompt_tokens, text)})
    yield b"[DONE]"
