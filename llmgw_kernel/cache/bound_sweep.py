"""What a false-hit bound would have done over a logged window: hits, the verified false-hit
estimate with its interval, and (with labels) the labelled false-hit rate, per bound
(docs/cache.md#a-false-hit-bound-max_false_hit_rate; the notebook
``notebooks/tune_semantic_cache.ipynb`` plots it).

Each bound is one pass of the live decision core (:class:`~.core.Caches`) over the window's
semantic requests in arrival order, with the logged namespaces, contexts, embeddings and
features; an answer enters the cache when its request finished (``ts_end``). Learning is
simulated from the log itself: a request the candidate misses is compared with its nearest
verified entry (``shadow``), and a ``verify_rate`` share of its hits (the same hash of the
request id as live) is checked, wherever the log holds both answers (``bodies: full``; a
request that was a live hit has no answer of its own and gives no outcome). Outcomes are
learned as soon as they exist (the live gateway learns them a few milliseconds later).

Only the semantic cache is simulated (no exact cache, admission or routing: each logged
request reaches the cache as it did live); the composed replay of a bound policy is the
replay's (``Caches`` with the logged thresholds, ``Caches.attach_outcomes`` for a candidate).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..decisions import cache as decide
from .bound import DEFAULT_VERIFY_RATE, Outcome, wilson
from .core import Caches, Query
from .equivalence import answers_match
from .exact import Entry
from .learning import sampled

if TYPE_CHECKING:
    import duckdb

    from ..policy.model import Policy

_SQL = """
SELECT request_id, epoch(ts), epoch(coalesce(ts_end, ts)), route, cache_namespace, cache_context, embedding,
       embedding_model, cache_features, CAST(response_body AS VARCHAR), cache
FROM requests
WHERE embedding IS NOT NULL AND cache_context IS NOT NULL AND outcome = 'ok' AND endpoint = 'chat.completions'
ORDER BY ts, request_id
"""


def sweep_bound(
    policy: Policy,
    con: duckdb.DuckDBPyConnection,
    bounds: list[float],
    labels: dict[str, str] | None = None,
    equivalence: str | None = None,
) -> list[dict[str, Any]]:
    """One row per bound: semantic hits, hit rate, outcomes learned, final thresholds, the
    verified false-hit estimate (rate, 95% Wilson low/high, how many checked) and, with
    ``labels`` (request id -> meaning), the labelled false-hit rate. ``equivalence`` overrides
    the policy's (``embedding`` loads the route's embedding model in this process)."""
    rows = con.execute(_SQL).fetchall()
    encoders: dict[str | None, Any] = {}
    return [_one(policy, rows, delta, labels, equivalence, encoders) for delta in bounds]


def _one(
    policy: Policy, rows: list[tuple], delta: float, labels: dict[str, str] | None, how: str | None, encoders: dict
) -> dict[str, Any]:
    caches = Caches()
    settings: dict[str, Any] = {}
    pending: list[tuple[float, int, Query, Entry]] = []  # answers not yet in the cache, by finish time
    hits = wrong_labelled = checked = checked_wrong = 0
    considered = 0
    for rid, ts, end, route, ns, ctx, emb, model, feats, body, _ in rows:
        s = settings.get(route)
        if s is None:
            s = settings[route] = _bounded(policy, route, delta, how)
        if s is None:
            continue
        while pending and pending[0][0] < ts:
            _, _, q0, e0 = heapq.heappop(pending)
            caches.store(q0, e0)
        considered += 1
        f = decide.Features.from_json(orjson.loads(feats) if isinstance(feats, str) else feats) if feats else None
        q = Query(s, route, ns or "", None, True, ctx, np.asarray(emb, np.float32), f, model)
        found = caches.lookup_semantic(q, ts)
        fresh = body.encode() if isinstance(body, str) else None
        near = found.nearest
        if found.entry is not None:
            hits += 1
            source = found.entry.request_id
            if labels is not None and labels.get(rid) is not None and labels.get(rid) != labels.get(source):
                wrong_labelled += 1
            rate = DEFAULT_VERIFY_RATE if s.semantic.verify_rate is None else s.semantic.verify_rate
            if near is not None and fresh is not None and found.entry.body is not None and sampled(rid, rate):
                same = answers_match(s.semantic, bytes(found.entry.body), fresh, _encoder(s.semantic, encoders))
                checked += 1
                checked_wrong += not same
                caches.learn(Outcome(ts, route, q.model or "", source, rid, near.similarity, same, "sampled"))
            continue
        if fresh is None:
            continue
        if near is not None and near.entry.body is not None:
            same = answers_match(s.semantic, bytes(near.entry.body), fresh, _encoder(s.semantic, encoders))
            caches.learn(
                Outcome(end, route, q.model or "", near.entry.request_id, rid, near.similarity, same, "shadow")
            )
        heapq.heappush(pending, (end, considered, q, Entry(rid, end, fresh, None, None)))
    rate, low, high = wilson(checked_wrong, checked)
    thresholds = {f"{r} ({m})": b.threshold(delta) for (r, m), b in caches.bounds.items()}
    return {
        "max_false_hit_rate": delta, "considered": considered, "semantic_hits": hits,
        "hit_rate": round(hits / considered, 4) if considered else None,
        "outcomes": sum(sum(b.n) for b in caches.bounds.values()), "thresholds": thresholds,
        "checked_hits": checked, "est_false_hit_rate": rate, "est_low": low, "est_high": high,
        "labelled_false_hit_rate": round(wrong_labelled / hits, 4) if labels is not None and hits else None,
    }  # fmt: skip


def _encoder(sem: Any, encoders: dict) -> Any:
    """The embedding model's encode, loaded once, when answers compare by embedding."""
    if sem.equivalence != "embedding":
        return None
    if sem.model not in encoders:
        from .embedder import Embedder

        emb = Embedder(sem.model)
        emb.load()
        encoders[sem.model] = emb.encode
    return encoders[sem.model]


def _bounded(policy: Policy, route: str, delta: float, how: str | None) -> Any:
    """The route's cache settings with the semantic threshold replaced by the bound ``delta``."""
    s = policy.cache_for(route)
    if s is None or s.semantic is None:
        return None
    update: dict[str, Any] = {"max_false_hit_rate": delta}
    if how is not None:
        update["equivalence"] = how
    sem = s.semantic.model_copy(update=update)
    return s.model_copy(update={"semantic": sem})
