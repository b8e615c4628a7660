"""The semantic cache of one route and one embedding model.

Entries live in groups, one per (namespace, conversation context): a lookup only ever sees
its own group, so tenants and contexts never mix. A group searches by exact cosine
similarity (one matrix-vector product) while it is small, and through an hnswlib index once
it holds more than :data:`EXACT_MAX` entries; the index's candidates are rescored exactly, so
similarities are the same numbers either way. Visibility and eviction follow
:class:`~llmgw_kernel.cache.exact.ExactStore`: an entry answers a request that arrived at
``ts`` iff ``stored_at < ts < stored_at + ttl_s``, and the oldest entries of the route are
evicted first once it holds ``max_entries``. Replay drives this same class with logged
embeddings and times.

Not thread-safe: the live cache calls it from one worker thread only.

>>> import numpy as np
>>> store = SemanticStore(dim=2)
>>> from llmgw_kernel.cache.exact import Entry
>>> e = store.add("ns", "ctx", np.array([1, 0], np.float32), Entry("req_1", 10.0, b"{}", None, None), None, 100)
>>> found = store.search("ns", "ctx", np.array([0.8, 0.6], np.float32), 11.0, 60, 3)
>>> [(round(c.similarity, 3), c.entry) for c in found]
[(0.8, 0)]
>>> store.search("other-tenant", "ctx", np.array([1, 0], np.float32), 11.0, 60, 3)
[]
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..decisions.cache import Candidate, Features

if TYPE_CHECKING:
    from .exact import Entry

#: a group searches exactly up to this many entries, then through hnswlib
EXACT_MAX = 2048
#: hnswlib build/search parameters (M, ef_construction, ef)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 16, 200, 64


class SemanticEntry(NamedTuple):
    entry: Entry
    features: Features | None
    group: tuple[str, str]


class _Group:
    """The vectors of one (namespace, context), by slot; slots are never reused."""

    __slots__ = ("dim", "vecs", "stored", "alive", "eids", "n", "live", "index")

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.vecs = np.empty((8, dim), np.float32)
        self.stored = np.empty(8, np.float64)
        self.alive = np.zeros(8, bool)
        self.eids = np.empty(8, np.int64)
        self.n = 0
        self.live = 0
        self.index = None  # hnswlib.Index once the group is large

    def add(self, vec: np.ndarray, stored_at: float, eid: int) -> int:
        if self.n == len(self.vecs):
            self._grow()
        slot = self.n
        self.vecs[slot] = vec
        self.stored[slot] = stored_at
        self.alive[slot] = True
        self.eids[slot] = eid
        self.n += 1
        self.live += 1
        if self.index is not None:
            if self.n > self.index.get_max_elements():
                self.index.resize_index(2 * self.n)
            self.index.add_items(vec[None, :], [slot])
        elif self.live > EXACT_MAX:
            self._build_index()
        return slot

    def remove(self, slot: int) -> None:
        self.alive[slot] = False
        self.live -= 1
        if self.index is not None:
            self.index.mark_deleted(slot)
        if self.live and self.live * 2 < self.n and self.n > 64:
            self._compact()

    def _grow(self) -> None:
        cap = 2 * len(self.vecs)
        for name in ("vecs", "stored", "alive", "eids"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def _compact(self) -> None:
        keep = np.flatnonzero(self.alive[: self.n])
        for name in ("vecs", "stored", "alive", "eids"):
            arr = getattr(self, name)
            arr[: len(keep)] = arr[keep]
        self.alive[len(keep) : self.n] = False
        self.n = len(keep)
        self.index = None
        if self.live > EXACT_MAX:
            self._build_index()

    def _build_index(self) -> None:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(max_elements=max(2 * self.n, 1024), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        index.set_num_threads(1)
        slots = np.flatnonzero(self.alive[: self.n])
        index.add_items(self.vecs[slots], slots)
        index.set_ef(HNSW_EF)
        self.index = index

    def _approximate(self, q: np.ndarray, ts: float, ttl_s: float, k: int) -> np.ndarray:
        """Slots of up to ``k`` visible near neighbours from hnswlib, sorted. An unfiltered query
        for a few spare candidates usually has ``k`` visible ones; only when it does not is the
        (slower, Python-callback) filtered query run."""
        assert self.index is not None
        alive, stored = self.alive, self.stored
        labels, _ = self.index.knn_query(q[None, :], k=min(k + 8, self.live))
        cand = labels[0].astype(np.int64)
        vis = cand[alive[cand] & (stored[cand] < ts) & (stored[cand] + ttl_s > ts)]
        if len(vis) >= k:
            return np.sort(vis)

        def visible(slot: int) -> bool:
            return bool(alive[slot]) and stored[slot] < ts < stored[slot] + ttl_s

        found = min(k, self.live)
        while found >= 1:
            try:
                labels, _ = self.index.knn_query(q[None, :], k=found, filter=visible)
                return np.sort(labels[0].astype(np.int64))
            except RuntimeError:  # fewer than `found` visible entries
                found -= 1
        return np.empty(0, np.int64)

    def search(self, q: np.ndarray, ts: float, ttl_s: float, k: int) -> list[tuple[float, int]]:
        """Up to ``k`` (similarity, entry id) visible at ``ts``, best first (ties: older first)."""
        n = self.n
        stored = self.stored[:n]
        if self.index is None:
            valid = self.alive[:n] & (stored < ts) & (stored + ttl_s > ts)
            if not valid.any():
                return []
            sims = self.vecs[:n] @ q  # one product over every row beats copying the visible ones
            slots = np.flatnonzero(valid)
            sims = sims[slots]
        else:
            slots = self._approximate(q, ts, ttl_s, k)
            if not len(slots):
                return []
            sims = self.vecs[slots] @ q  # rescored exactly
        order = np.argsort(-sims, kind="stable")[:k]
        return [(float(sims[i]), int(self.eids[slots[i]])) for i in order]


class SemanticStore:
    """All semantic entries of one route for one embedding model."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._groups: dict[tuple[str, str], _Group] = {}
        self._entries: dict[int, SemanticEntry] = {}
        self._order: deque[int] = deque()  # insertion order = eviction order
        self._purged: set[int] = set()  # expired and deleted, still holding their place in _order
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries) - len(self._purged)

    def search(self, ns: str, ctx: str, q: np.ndarray, ts: float, ttl_s: float, k: int) -> list[Candidate]:
        group = self._groups.get((ns, ctx))
        if group is None:
            return []
        return [Candidate(sim, eid, self._entries[eid].features) for sim, eid in group.search(q, ts, ttl_s, k)]

    def add(self, ns: str, ctx: str, vec: np.ndarray, entry: Entry, features: Features | None, max_entries: int) -> int:
        key = (ns, ctx)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(self.dim)
        eid = self._next
        self._next += 1
        group.add(vec, entry.stored_at, eid)
        self._entries[eid] = SemanticEntry(entry, features, key)
        self._order.append(eid)
        while len(self._entries) > max_entries:
            self._evict(self._order.popleft())
        return eid

    def purge(self, before: float, ttl_s: float) -> int:
        """Delete the entries that expired by ``before``: out of their group's index, answer
        freed. Each keeps its place in the eviction order (a tombstone), so eviction stays a
        function of insertions alone — what replay reproduces. Returns how many."""
        n = 0
        for eid in self._order:  # oldest first
            if eid in self._purged:
                continue
            sem = self._entries[eid]
            if sem.entry.stored_at + ttl_s > before:
                break
            self._remove(eid, sem)
            self._entries[eid] = sem._replace(entry=sem.entry._replace(body=None))
            self._purged.add(eid)
            n += 1
        return n

    def _evict(self, eid: int) -> None:
        sem = self._entries.pop(eid)
        if eid in self._purged:
            self._purged.discard(eid)
            return
        self._remove(eid, sem)

    def _remove(self, eid: int, sem: SemanticEntry) -> None:
        group = self._groups[sem.group]
        slot = int(np.flatnonzero(group.eids[: group.n] == eid)[0])  # compaction may have moved it
        group.remove(slot)
        if not group.live:
            del self._groups[sem.group]

    def get(self, eid: int) -> SemanticEntry:
        return self._entries[eid]

    def vector(self, eid: int) -> np.ndarray:
        sem = self._entries[eid]
        group = self._groups[sem.group]
        slot = int(np.flatnonzero(group.eids[: group.n] == eid)[0])
        return group.vecs[slot]

    def entries(self) -> list[tuple[int, SemanticEntry]]:
        """Every entry not purged, oldest first."""
        return [(eid, self._entries[eid]) for eid in self._order if eid not in self._purged]
