"""The cache decision core: what a request finds in the caches, and what its answer adds to
them. Live serving and replay both call it (docs/cache.md).

:class:`Caches` holds every route's :class:`~.exact.ExactStore` and every (route, model)'s
:class:`~.semantic.SemanticStore`; :meth:`Caches.lookup` decides one request — the exact
entry visible at its arrival, else the semantic verdict of
:func:`~llmgw_kernel.decisions.cache.choose` over the nearest visible entries of its group —
and :meth:`Caches.store` files a fresh answer under both. The live proxy
(:class:`~.service.CacheService`) calls it for each request — a window of one — splitting
the two halves across threads (:meth:`Caches.lookup_exact` on the event loop, before
anything waits for an embedding; :meth:`Caches.lookup_semantic` on the cache worker, after
the prompt is embedded). Replay (:class:`~llmgw_kernel.replay.cache_stage.CacheState`)
calls :meth:`Caches.lookup` over the logged window in decision order, with the logged keys,
times, embeddings and features. A sweep of semantic thresholds swaps the semantic search for
precomputed neighbour lists (:meth:`Caches.search` / :meth:`Caches.add_semantic` are the
seam) and keeps the decision.

>>> import numpy as np
>>> from llmgw_kernel import load_policy
>>> from llmgw_kernel.cache.exact import Entry
>>> p = load_policy({"providers": {"d": {"kind": "demo"}}, "cache": {"semantic": {"threshold": 0.9}},
...                  "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}}})
>>> caches, s = Caches(), p.cache_for("m")
>>> first = Query(s, "m", "ns", "key-1", True, "ctx", np.array([1, 0], np.float32), None, semantic_model(s.semantic))
>>> caches.store(first, Entry("req_1", 10.0, b"{}", "d/echo", None))
>>> again = Query(s, "m", "ns", "key-2", True, "ctx", np.array([0.96, 0.28], np.float32), None, first.model)
>>> found = caches.lookup(again, 11.0)
>>> found.kind, found.entry.request_id, round(found.similarity, 2)
('semantic-hit', 'req_1', 0.96)
>>> caches.lookup(again, 700.0).reason   # past the TTL (600 s): nothing visible
'semantic: empty'
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from ..decisions import cache as decide
from .bound import Bound, Folded, Outcome, floor_after
from .embedder import DEFAULT_MODEL
from .exact import Entry, ExactStore

if TYPE_CHECKING:
    import numpy as np

    from ..policy.model import CacheSettings, SemanticCacheSettings
    from .semantic import SemanticStore


class Query:
    """One request's cache identity, computed once (live: by ``CacheService.prepare`` and the
    embedding job; replay: from the logged facts)."""

    __slots__ = (
        "settings", "route", "ns", "key", "read", "context", "vector", "features", "model", "text", "row", "threshold",
        "looked_up", "nearest",
    )  # fmt: skip

    def __init__(
        self,
        settings: CacheSettings,
        route: str,
        ns: str,
        key: str | None,
        read: bool,
        context: str | None = None,
        vector: np.ndarray | None = None,
        features: decide.Features | None = None,
        model: str | None = None,
        row: int = -1,
    ) -> None:
        self.settings = settings
        self.route = route
        self.ns = ns
        self.key = key  # scoped exact key (None: no exact key, e.g. a body replay cannot read)
        self.read = read  # False for no-cache: store the fresh answer without reading
        self.context = context  # semantic group within the namespace (None: not a text user turn)
        self.vector = vector
        self.features = features
        self.model = model  # the embedding model that made ``vector``
        self.text: str | None = None  # live only: what the worker embeds
        self.row = row  # replay only: the window row (a sweep's neighbour lists are by row)
        self.threshold: float | None = None  # replay of the live bound: the logged threshold it applied
        # replay of the live bound: when the live lookup was queued (``cache_lookup_ts``): it saw
        # the entries' floors of the outcomes known before then
        self.looked_up: float | None = None
        self.nearest: Nearest | None = None  # a miss under the bound: the entry its answer is compared with


class Nearest(NamedTuple):
    """The entry a semantic decision under the bound was about, and its similarity."""

    entry: Entry
    similarity: float


class Found(NamedTuple):
    """What a lookup found: ``hit`` / ``semantic-hit`` with the answering entry, or ``miss``."""

    kind: str
    entry: Entry | None
    similarity: float | None = None  # of the best semantic candidate, hit or not
    reason: str | None = None  # why a miss (``semantic: below threshold``, ...), None for hits
    threshold: float | None = None  # the bound's learned threshold the decision applied (None: static)
    nearest: Nearest | None = None  # the bound: the nearest entry that passed verification (hit or not)


def semantic_model(sem: SemanticCacheSettings | None) -> str:
    """The embedding model a semantic cache uses (its ``model``, else the default)."""
    return (sem.model if sem is not None else None) or DEFAULT_MODEL


def semantic_settings(q: Query) -> SemanticCacheSettings | None:
    """The semantic cache ``q`` takes part in (None: none — no semantic cache on its route, or
    no vector of the route's model, or no text user turn)."""
    sem = q.settings.semantic
    if sem is None or q.vector is None or q.context is None or q.model != semantic_model(sem):
        return None
    return sem


class Caches:
    """Every route's exact and semantic stores, and the decisions made over them.

    Threads (live): the exact stores are read and written on the event loop, the semantic
    ones on the cache worker; the maps of stores change and are copied only under ``maps``."""

    def __init__(self) -> None:
        self.exact: dict[str, ExactStore] = {}
        self.semantic: dict[tuple[str, str], SemanticStore] = {}  # (route, model) -> store
        self.bounds: dict[tuple[str, str], Bound] = {}  # (route, model) -> learned thresholds
        self.maps = threading.Lock()
        self._feed: list[Outcome] = []  # replay: outcomes to learn in time order
        self._fed = 0

    # -- stores ------------------------------------------------------------------------------

    def exact_store(self, route: str) -> ExactStore:
        store = self.exact.get(route)
        if store is None:
            with self.maps:
                store = self.exact.setdefault(route, ExactStore())
        return store

    def semantic_store(self, route: str, model: str, dim: int) -> SemanticStore:
        store = self.semantic.get((route, model))
        if store is None:
            from .semantic import SemanticStore

            with self.maps:
                store = self.semantic.setdefault((route, model), SemanticStore(dim))
        return store

    def stores(self) -> tuple[list[tuple[str, ExactStore]], list[tuple[tuple[str, str], SemanticStore]]]:
        """The exact and semantic stores, copied (another thread may be adding one)."""
        with self.maps:
            return list(self.exact.items()), list(self.semantic.items())

    # -- decisions ---------------------------------------------------------------------------

    def lookup(self, q: Query, ts: float, threshold: float | None = None) -> Found:
        """The cache outcome of a request that arrived at ``ts`` (it does not bypass the cache):
        the exact entry visible then, else the semantic verdict (``threshold`` overrides the
        route's, for a sweep)."""
        entry = self.lookup_exact(q, ts)
        return Found("hit", entry) if entry is not None else self.lookup_semantic(q, ts, threshold)

    def lookup_exact(self, q: Query, ts: float) -> Entry | None:
        """The entry of an exact hit, if any (None: look further). An entry stored at ``S``
        answers a request that arrived at ``ts`` iff ``S < ts < S + ttl_s``."""
        exact = q.settings.exact
        if not q.read or exact is None or q.key is None:
            return None
        store = self.exact.get(q.route)
        return store.get(q.key, ts, exact.ttl_s) if store is not None else None

    def lookup_semantic(self, q: Query, ts: float, threshold: float | None = None) -> Found:
        """The semantic verdict: the most similar of the :data:`~decide.CANDIDATES` nearest
        entries visible at ``ts`` in the request's group that reaches the threshold and passes
        verification answers; else a miss saying why."""
        if not q.read:
            return Found("miss", None, None, decide.NO_CACHE)
        sem = semantic_settings(q)
        if sem is None:
            return Found("miss", None)
        entries: dict[int, Entry] = {}
        cands = self.search(q, ts, sem.ttl_s, entries)
        if sem.max_false_hit_rate is None or threshold is not None:
            verdict = decide.choose(sem.threshold if threshold is None else threshold, sem.verify, q.features, cands)
            if verdict.entry is not None:
                return Found("semantic-hit", entries[verdict.entry], verdict.similarity)
            return Found("miss", None, verdict.similarity, f"semantic: {verdict.reason}")
        return self._bounded(q, ts, sem, list(cands), entries)

    def _bounded(
        self, q: Query, ts: float, sem: SemanticCacheSettings, cands: list[decide.Candidate], entries: dict[int, Entry]
    ) -> Found:
        """The semantic verdict under ``max_false_hit_rate``: the region's learned threshold
        and each entry's own floor. Replaying the live decision (``q.threshold``: the logged
        threshold), the floors are those the live lookup saw: of the outcomes known before it
        was queued (``q.looked_up``; arrival when not logged) — an outcome learned between the
        request's arrival and its lookup floored an entry live too."""
        assert sem.max_false_hit_rate is not None and q.model is not None
        self.catch_up(ts)
        bound = self.bound(q.route, q.model)
        late = self.floors_known_by(q.route, q.model, q.looked_up) if q.threshold is not None else {}
        t = q.threshold if q.threshold is not None else bound.threshold(sem.max_false_hit_rate)

        def floor(eid: int) -> float:
            source = entries[eid].request_id
            return max(bound.floor(source), late.get(source, 0.0))

        verdict = decide.choose(t, sem.verify, q.features, cands, floor)
        near = None
        if verdict.nearest is not None:
            near = Nearest(entries[verdict.nearest], next(c.similarity for c in cands if c.entry == verdict.nearest))
        if verdict.entry is not None:
            return Found("semantic-hit", entries[verdict.entry], verdict.similarity, None, verdict.threshold, near)
        return Found("miss", None, verdict.similarity, f"semantic: {verdict.reason}", verdict.threshold, near)

    # -- learning (the bound) ----------------------------------------------------------------

    def bound(self, route: str, model: str) -> Bound:
        """The learned thresholds of a region (route and embedding model)."""
        found = self.bounds.get((route, model))
        if found is None:
            with self.maps:
                found = self.bounds.setdefault((route, model), Bound())
        return found

    def learn(self, outcome: Outcome) -> None:
        """Learn one verified outcome (live: on the cache worker, in the order they became known)."""
        self.bound(outcome.route, outcome.model).add(outcome)

    def attach_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        """Replay: outcomes to learn as lookups pass the times they became known."""
        self._feed = sorted(outcomes, key=lambda o: o.known_at)
        self._fed = 0

    def catch_up(self, ts: float) -> None:
        """Learn the attached outcomes known before ``ts``."""
        feed = self._feed
        while self._fed < len(feed) and feed[self._fed].known_at < ts:
            self.learn(feed[self._fed])
            self._fed += 1

    def floors_known_by(self, route: str, model: str, until: float | None) -> dict[str, float]:
        """Replay: the entry floors of the region's attached outcomes known before ``until`` that
        are not learned yet (known since the last :meth:`catch_up`), by entry — looked at, not
        learned, so no later request of another policy version decides with them."""
        raised: dict[str, float] = {}
        feed, i = self._feed, self._fed
        while until is not None and i < len(feed) and feed[i].known_at < until:
            o = feed[i]
            i += 1
            if (o.route, o.model) != (route, model):
                continue
            for source, f in o.totals.floors if isinstance(o, Folded) else [(o.source, floor_after(o))]:
                if f is not None and f > raised.get(source, 0.0):
                    raised[source] = f
        return raised

    def search(self, q: Query, ts: float, ttl_s: float, entries: dict[int, Entry]) -> Iterable[decide.Candidate]:
        """The nearest entries of ``q``'s group visible at ``ts``, best first, noting each
        candidate's entry in ``entries`` (by candidate id)."""
        assert q.vector is not None and q.model is not None and q.context is not None
        store = self.semantic.get((q.route, q.model))
        if store is None:
            return []
        cands = store.search(q.ns, q.context, q.vector, ts, ttl_s, decide.CANDIDATES)
        for c in cands:
            entries[c.entry] = store.get(c.entry).entry
        return cands

    # -- storing -----------------------------------------------------------------------------

    def store(self, q: Query, entry: Entry) -> None:
        """File a fresh answer under the request's exact key and in its semantic group."""
        self.store_exact(q, entry)
        self.add_semantic(q, entry)

    def store_exact(self, q: Query, entry: Entry) -> None:
        exact = q.settings.exact
        if exact is not None and q.key is not None:
            self.exact_store(q.route).put(q.key, entry, exact.max_entries)

    def add_semantic(self, q: Query, entry: Entry) -> None:
        """Add the answer to its semantic group (when the request has a vector of the route's model)."""
        sem = semantic_settings(q)
        if sem is None:
            return
        assert q.vector is not None and q.model is not None and q.context is not None
        store = self.semantic_store(q.route, q.model, len(q.vector))
        store.add(q.ns, q.context, q.vector, entry, q.features, sem.max_entries)
