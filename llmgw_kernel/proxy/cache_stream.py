"""A cached chat.completion served to a client that asked for ``stream: true``.

The chunks follow OpenAI's stream format: per choice a role chunk, the content, each tool
call (id, name and arguments in one delta), then a chunk carrying ``finish_reason``; with
``stream_options.include_usage`` a last chunk with empty ``choices`` and the usage.

>>> import orjson
>>> done = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
...     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
...     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
>>> [orjson.loads(c)["choices"] for c in completion_chunks(done, include_usage=True)]  # doctest: +NORMALIZE_WHITESPACE
[[{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'finish_reason': None}],
 [{'index': 0, 'delta': {'content': 'Hi'}, 'finish_reason': None}],
 [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}],
 []]
"""

from __future__ import annotations

from typing import Any

import orjson

_CHUNK_CHARS = 64  # content is sent in pieces of about this many characters


def completion_chunks(completion: bytes, include_usage: bool) -> list[bytes]:
    """The ``data:`` payloads (without framing) of a stream equivalent to ``completion``."""
    c = orjson.loads(completion)
    head: dict[str, Any] = {
        "id": c.get("id"), "object": "chat.completion.chunk", "created": c.get("created"), "model": c.get("model"),
    }  # fmt: skip
    if c.get("system_fingerprint"):
        head["system_fingerprint"] = c["system_fingerprint"]
    out: list[bytes] = []

    def emit(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        out.append(orjson.dumps({**head, "choices": [choice]}))

    for choice in c.get("choices") or ():
        i = choice.get("index", 0)
        msg = choice.get("message") or {}
        emit(i, {"role": msg.get("role", "assistant"), "content": ""})
        text = msg.get("content")
        if isinstance(text, str):
            for start in range(0, len(text), _CHUNK_CHARS):
                emit(i, {"content": text[start : start + _CHUNK_CHARS]})
        if msg.get("refusal"):
            emit(i, {"refusal": msg["refusal"]})
        for n, call in enumerate(msg.get("tool_calls") or ()):
            emit(
                i,
                {
                    "tool_calls": [
                        {"index": n, "id": call.get("id"), "type": "function", "function": call.get("function")}
                    ]
                },
            )
        emit(i, {}, choice.get("finish_reason") or "stop")
    if include_usage:
        out.append(orjson.dumps({**head, "choices": [], "usage": c.get("usage")}))
    return out
