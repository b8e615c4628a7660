"""Cache decisions: what a request's cache identity is, whether it may use the cache, and
whether a semantic neighbour may answer it. Pure functions, the same live and in replay
(docs/cache.md).

>>> body = {"messages": [{"role": "system", "content": "Be brief."},
...                      {"role": "user", "content": "How do I convert Celsius to Fahrenheit?"}],
...         "temperature": 0}
>>> semantic_text(body)
'How do I convert Celsius to Fahrenheit?'
>>> exact_key("gpt-4o", body) == exact_key("gpt-4o", {**body, "stream": True, "user": "ann"})
True
>>> verify(features("How do I convert Celsius to Fahrenheit?"),
...        features("How do I convert Fahrenheit to Celsius?"))
'word order'
>>> verify(features("Is 7 a prime number?"), features("Is 9 a prime number?"))
'numbers'

Identity
--------
- **exact key**: SHA-256 of the route and the canonical request (every field that can change
  the answer: messages, tools, response_format, temperature, seed, max_tokens, n, ...; not
  ``stream``, ``stream_options``, ``metadata`` or ``user``), hashed per namespace.
- **namespace**: the route, plus (by policy ``cache.namespace``, default ``[key, team]``) the
  client's key and team, plus the client's ``x-llmgw-cache-namespace`` header. A header can
  only narrow a namespace, never reach another tenant's.
- **semantic text**: the last user turn's text. Everything else (system prompt, earlier
  turns, tools, sampling parameters) is the **context**: its hash is part of the semantic
  group, so a paraphrase only matches within an identical conversation context.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from ..policy.model import CacheSettings
from .cache_features import Features, features, verify

__all__ = [
    "CANDIDATES", "CONTROLS", "NO_CACHE", "NO_STORE", "Candidate", "Features", "SemanticVerdict", "bypass_reason",
    "canonical", "choose", "exact_key", "features", "longest_ttl", "namespace", "scoped", "semantic_context",
    "semantic_text",
    "verify",
]  # fmt: skip

#: request fields that never change the answer
_NOT_ANSWER = frozenset({"model", "metadata", "stream", "stream_options", "user", "store", "service_tier"})

#: the x-llmgw-cache request header
NO_CACHE = "no-cache"  # do not read the cache, store the fresh answer
NO_STORE = "no-store"  # neither read nor store
CONTROLS = frozenset({NO_CACHE, NO_STORE})

#: how many nearest entries a semantic lookup considers, best first
CANDIDATES = 3


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(body: Mapping[str, Any]) -> bytes:
    """The answer-determining fields of a request, in a canonical encoding."""
    return orjson.dumps({k: v for k, v in body.items() if k not in _NOT_ANSWER}, option=orjson.OPT_SORT_KEYS)


def exact_key(route: str, body: Mapping[str, Any]) -> str:
    """SHA-256 over the route and the canonical request (the namespace is added by :func:`scoped`)."""
    return _sha(route.encode() + b"\x00" + canonical(body))


def namespace(settings: CacheSettings, route: str, key_id: str | None, team: str | None, header: str | None) -> str:
    """The namespace a request reads and writes: route + chosen tenant parts + the header's."""
    parts = [f"route={route}"]
    if "key" in settings.namespace:
        parts.append(f"key={key_id or ''}")
    if "team" in settings.namespace:
        parts.append(f"team={team or ''}")
    if header:
        parts.append(f"ns={header}")
    return "\x1f".join(parts)


def scoped(ns: str, key: str) -> str:
    """A key within a namespace."""
    return _sha(ns.encode() + b"\x00" + key.encode())


def longest_ttl(policy: Any) -> float:
    """The longest exact or semantic TTL of any route's cache (0 without caches): how far back
    an answer may still be served from."""
    ttls = [0.0]
    for route in policy.routes:
        s = policy.cache_for(route)
        if s is not None:
            ttls += [x.ttl_s for x in (s.exact, s.semantic) if x is not None]
    return max(ttls)


def bypass_reason(settings: CacheSettings, body: Mapping[str, Any], control: str | None) -> str | None:
    """Why this request does not use the cache at all (None: it does)."""
    if control == NO_STORE:
        return "no-store"
    limit = settings.max_temperature
    if limit is not None:
        t = body.get("temperature")
        if isinstance(t, (int, float)) and t > limit:
            return "temperature"
    return None


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None  # images, audio, files: no semantic match
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def semantic_text(body: Mapping[str, Any]) -> str | None:
    """The text a semantic lookup embeds: the last user turn (None: not semantically cacheable)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    text = _text(last.get("content"))
    return text if text and text.strip() else None


def semantic_context(route: str, body: Mapping[str, Any]) -> str:
    """Hash of everything but the last user turn's text: paraphrases match only within it."""
    messages = list(body["messages"])
    last = {k: v for k, v in messages[-1].items() if k != "content"}
    rest = {**body, "messages": [*messages[:-1], last]}
    return _sha(route.encode() + b"\x00" + canonical(rest))[:32]


# --- verification: features and verify live in cache_features ---------------------------------


class Candidate(NamedTuple):
    """A cached entry a semantic lookup found, with its similarity to the query."""

    similarity: float
    entry: int  # the store's id for the entry
    features: Features | None


class SemanticVerdict(NamedTuple):
    entry: int | None  # the entry that answers, None = miss
    similarity: float | None  # of the best candidate (hit or not)
    reason: str  # semantic-hit | below threshold | rejected: <why> | empty
    nearest: int | None = None  # the most similar candidate that passed verification (hit or not)
    threshold: float | None = None  # the threshold applied to the deciding candidate (its own floor included)


def choose(
    threshold: float,
    check: bool,
    query: Features | None,
    candidates: Iterable[Candidate],
    floor: Callable[[int], float] | None = None,
) -> SemanticVerdict:
    """The semantic decision: the most similar candidate at or above ``threshold`` that passes
    verification answers; candidates come best first (at most :data:`CANDIDATES`).

    ``floor`` (the learned bound): a candidate's own lowest similarity (an entry seen to answer
    wrongly); the search then goes on below ``threshold`` until it has found the nearest
    candidate that passes verification (the one a miss is compared with)."""
    best: float | None = None
    rejected = None
    nearest: Candidate | None = None
    for cand in candidates:
        if best is None:
            best = cand.similarity
        if cand.similarity < threshold and (floor is None or nearest is not None):
            break
        if check and query is not None and cand.features is not None:
            why = verify(query, cand.features)
            if why is not None:
                rejected = rejected or why
                continue
        if floor is None:
            return SemanticVerdict(cand.entry, cand.similarity, "semantic-hit")
        need = max(threshold, floor(cand.entry))
        if cand.similarity >= need:
            return SemanticVerdict(cand.entry, cand.similarity, "semantic-hit", cand.entry, need)
        nearest = nearest or cand
    if best is None:
        return SemanticVerdict(None, None, "empty", None, None if floor is None else threshold)
    reason = f"rejected: {rejected}" if rejected else "below threshold"
    if floor is None:
        return SemanticVerdict(None, best, reason)
    if nearest is None:
        return SemanticVerdict(None, best, reason, None, threshold)
    return SemanticVerdict(None, best, reason, nearest.entry, max(threshold, floor(nearest.entry)))
