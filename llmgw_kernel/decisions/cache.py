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
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from ..policy.model import CacheSettings

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


# --- verification ---------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|\d+(?:[.,]\d+)*")
_NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor cannot cant without dont doesnt didnt isnt arent wasnt "
    "werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt aint "
    "khong chang chua dung".split()  # Vietnamese (accents folded): không, chẳng, chưa, đừng
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_STOP = frozenset(
    "a an the and or but if of at by for with about against between into through during before after above "
    "below to from up down in out on off over under again further then once here there when where why how "
    "all any both each few more most other some such only own same so than too very can will just should "
    "now is are was were be been being have has had having do does did doing i me my we our you your he him "
    "his she her it its they them their what which who whom this that these those am would could might must "
    "shall may also get got as s t way best good please tell explain describe give know want need like "
    "yes vs versus".split()
)


_DIRECTIONAL = frozenset({"to", "into", "in", "from", "than", "before", "after", "per"})


class Features(NamedTuple):
    """What verification compares, as 32-bit token hashes (so the log need not keep the text).

    ``numbers``: numbers in the text (digits and number words); ``negations``: count of
    negation words; ``entities``: capitalised words not at a sentence start, and words mixing
    letters and digits; ``words``: the content words; ``pairs``: (content word before, content
    word after) around each directional word (to, into, in, from, than, before, after, per).
    """

    numbers: tuple[int, ...]
    negations: int
    entities: tuple[int, ...]
    words: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": list(self.numbers), "g": self.negations, "e": list(self.entities), "w": list(self.words),
            "p": [list(p) for p in self.pairs],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Features:
        pairs = tuple((int(a), int(b)) for a, b in data["p"])
        return cls(tuple(data["n"]), int(data["g"]), tuple(data["e"]), tuple(data["w"]), pairs)


def _h(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big")


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).replace("đ", "d")


def features(text: str) -> Features:
    """The verification features of one prompt."""
    folded = _fold(text)
    numbers: set[int] = set()
    entities: set[int] = set()
    words: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    negations = 0
    prev_end = 0
    last_word: int | None = None
    pending: int | None = None  # content word before a directional word, waiting for the one after
    for m in _WORD.finditer(folded):
        raw = m.group()
        sentence_start = prev_end == 0 or any(c in '.?!:;\n"(' for c in folded[prev_end : m.start()])
        prev_end = m.end()
        tok = raw.lower().replace("’", "'")
        if tok.endswith("n't"):
            negations += 1
            tok = tok[:-3]
        else:
            tok = tok.replace("'", "")
        if tok in _NEGATIONS:
            negations += 1
        elif tok[0].isdigit():
            numbers.add(_h(tok.replace(",", "")))
        elif tok in _NUMBER_WORDS:
            numbers.add(_h(_NUMBER_WORDS[tok]))
        elif tok in _DIRECTIONAL:
            pending = last_word
        elif tok not in _STOP and len(tok) > 1:
            h = _h(tok)
            words.add(h)
            if (raw[0].isupper() and not sentence_start) or (
                any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)
            ):
                entities.add(h)
            if pending is not None and pending != h:
                pairs.add((pending, h))
            pending = None
            last_word = h
    return Features(
        tuple(sorted(numbers)), negations, tuple(sorted(entities)), tuple(sorted(words)), tuple(sorted(pairs))
    )


def verify(query: Features, cached: Features) -> str | None:
    """Why a similar cached prompt must not answer this one (None: it may).

    Rejects the known failure modes of embedding similarity: different numbers, a negation in
    one and not the other, a named entity of one missing from the other, and a relation read
    the other way round ("Celsius to Fahrenheit" / "Fahrenheit to Celsius").
    """
    if query.numbers != cached.numbers:
        return "numbers"
    if (query.negations % 2) != (cached.negations % 2):
        return "negation"
    qw, cw = set(query.words), set(cached.words)
    if any(e not in cw for e in query.entities) or any(e not in qw for e in cached.entities):
        return "entities"
    reversed_pairs = {(b, a) for a, b in cached.pairs}
    if any(p in reversed_pairs for p in query.pairs):
        return "word order"
    return None


class Candidate(NamedTuple):
    """A cached entry a semantic lookup found, with its similarity to the query."""

    similarity: float
    entry: int  # the store's id for the entry
    features: Features | None


class SemanticVerdict(NamedTuple):
    entry: int | None  # the entry that answers, None = miss
    similarity: float | None  # of the best candidate (hit or not)
    reason: str  # semantic-hit | below threshold | rejected: <why> | empty


def choose(threshold: float, check: bool, query: Features | None, candidates: Iterable[Candidate]) -> SemanticVerdict:
    """The semantic decision: the most similar candidate at or above ``threshold`` that passes
    verification answers; candidates come best first (at most :data:`CANDIDATES`)."""
    best: float | None = None
    rejected = None
    for cand in candidates:
        if best is None:
            best = cand.similarity
        if cand.similarity < threshold:
            break
        if check and query is not None and cand.features is not None:
            why = verify(query, cand.features)
            if why is not None:
                rejected = rejected or why
                continue
        return SemanticVerdict(cand.entry, cand.similarity, "semantic-hit")
    if best is None:
        return SemanticVerdict(None, None, "empty")
    return SemanticVerdict(None, best, f"rejected: {rejected}" if rejected else "below threshold")
