"""When two answers are the same (docs/cache.md#a-false-hit-bound-max_false_hit_rate): the
check that turns a cached answer and a fresh one into a verified outcome.

- ``exact``: the same message content, refusal and tool calls, byte for byte;
- ``normalised`` (default): the same after Unicode NFKC, case folding, whitespace collapsed
  and trailing punctuation dropped (tool calls: the same names and JSON arguments);
- ``embedding``: cosine of the two answer texts' embeddings at least ``answer_threshold``
  (the caller embeds; runs on the cache worker).

>>> a = b'{"choices": [{"message": {"role": "assistant", "content": "Paris."}}]}'
>>> b = b'{"choices": [{"message": {"role": "assistant", "content": "  paris"}}]}'
>>> same_answer(a, b, "normalised"), same_answer(a, b, "exact")
(True, False)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .bound import DEFAULT_ANSWER_THRESHOLD, DEFAULT_EQUIVALENCE

if TYPE_CHECKING:
    from ..policy.model import SemanticCacheSettings

_SPACE = re.compile(r"\s+")
_TRAILING = ".!?;:,。！？ \t\n"


def answer_parts(body: bytes) -> tuple[str, str]:
    """The first choice's text (content, else refusal) and its tool calls as canonical JSON."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace"), ""
    choices = doc.get("choices") if isinstance(doc, dict) else None
    msg: Any = (
        choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    )
    if not isinstance(msg, dict):
        return "", ""
    text = msg.get("content") if isinstance(msg.get("content"), str) else msg.get("refusal") or ""
    calls = [
        (c.get("function") or {}).get("name", "") + "\x00" + _canonical_args((c.get("function") or {}).get("arguments"))
        for c in msg.get("tool_calls") or ()
        if isinstance(c, dict)
    ]
    return str(text), "\x1f".join(calls)


def _canonical_args(args: Any) -> str:
    if isinstance(args, str):
        try:
            args = orjson.loads(args)
        except orjson.JSONDecodeError:
            return args
    return orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()


def normalise(text: str) -> str:
    """The text as ``normalised`` equivalence compares it."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", folded).strip().rstrip(_TRAILING)


def same_answer(
    cached: bytes,
    fresh: bytes,
    how: str = "normalised",
    similarity: Callable[[str, str], float] | None = None,
    answer_threshold: float = 0.9,
) -> bool:
    """Whether ``fresh`` says what ``cached`` said, by ``how`` (``similarity``: the cosine of two
    texts' embeddings, needed for ``embedding``)."""
    if how == "exact":
        return answer_parts(cached) == answer_parts(fresh)
    (ct, ccalls), (ft, fcalls) = answer_parts(cached), answer_parts(fresh)
    if ccalls != fcalls:
        return False
    if how == "embedding":
        if normalise(ct) == normalise(ft):
            return True
        assert similarity is not None, "embedding equivalence needs the embedding model"
        return similarity(ct, ft) >= answer_threshold
    return normalise(ct) == normalise(ft)


def answers_match(
    sem: SemanticCacheSettings, cached: bytes, fresh: bytes, encode: Callable[[list[str]], Any] | None = None
) -> bool:
    """:func:`same_answer` as a semantic cache's settings ask (``encode``: texts -> normalised
    vectors, the embedding model, needed for ``equivalence: embedding``)."""
    how = sem.equivalence or DEFAULT_EQUIVALENCE
    similarity = None
    if how == "embedding":
        assert encode is not None, "embedding equivalence needs the embedding model"

        def similarity(a: str, b: str) -> float:
            va, vb = encode([a, b])
            return float(va @ vb)

    return same_answer(cached, fresh, how, similarity, sem.answer_threshold or DEFAULT_ANSWER_THRESHOLD)
