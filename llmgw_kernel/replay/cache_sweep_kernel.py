"""One semantic threshold of a sweep, folded by a compiled loop over integer-coded columns.

A sweep (:mod:`.cache_sweep`) replays the same window at many thresholds. When no budget and
no token rate limit applies to any request, admission does not depend on what the cache
decides (a hit changes only costs and token counts, which nothing then reads), so every
threshold looks the same requests up, in the same order, at the same times, and stores each
miss's answer at the same time. Only the cache contents differ. :func:`fold_threshold` folds
those lookups — the decisions of :class:`~llmgw_kernel.cache.core.Caches`:

- an exact entry answers iff ``stored_at < ts < stored_at + ttl_s`` (the exact stores and
  their FIFO eviction are the compiled replay fold's own, :mod:`.fold_kernel`);
- else the neighbour list of the request (every earlier-stored request of its semantic
  group visible at its arrival, similarity at or above the sweep's lowest threshold, best
  first, ties in insertion order) is walked as :func:`~llmgw_kernel.decisions.cache.choose`
  walks the store's nearest entries: entries not in the cache at this threshold (a hit
  stores nothing) or evicted (FIFO per route and model) are skipped, the walk stops below the
  threshold or after :data:`~llmgw_kernel.decisions.cache.CANDIDATES` candidates, and the
  first candidate whose verification passed (computed once per pair) answers;
- a miss's answer enters the cache at its store time (heap of pending stores, flushed before
  each lookup, as ``CacheState`` does).

Its inputs are read over columns (:mod:`.cache_sweep_inputs`). The result equals the composed
Python fold at every threshold (tests/cache/test_cache_sweep.py).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ..decisions.cache import CANDIDATES
from .fold_kernel import _jit, _pop, _push, _put, _visible, exact_stores, njit
from .jit import read_only

#: per row of the window and the warm rows (``Composer.all_rows``), and the lookups in order
SweepInputs = namedtuple(
    "SweepInputs",
    "ts lkey skey store_of ttl_e max_e sem_q sem_s sst max_s store_at nb_ptr nb_j nb_sim nb_ok order flush warm "
    "n_keys n_stores n_sem",
)
#: a semantic cache over neighbour lists: per row, whether it looks up (``query``) and stores
#: (``store``) semantically, its store (route, model) and that store's size; the lists (CSR);
#: the state — entries added per store, each row's insertion ordinal, whether it was added
Sem = namedtuple("Sem", "query store sst max_s nb_ptr nb_j nb_sim nb_ok count ordinal added")
HIT, SEMANTIC_HIT, MISS = 1, 2, 3  # kinds; 0: not looked up


@_jit
def semantic_add(row, sem):  # type: ignore[no-untyped-def]
    """``row``'s answer enters its semantic store (``SemanticStore.add``: FIFO order per store)."""
    if sem.store[row]:
        s = sem.sst[row]
        sem.ordinal[row] = sem.count[s]
        sem.count[s] += 1
        sem.added[row] = True


@_jit
def semantic_lookup(i, t, sem):  # type: ignore[no-untyped-def]
    """The row whose answer serves ``i`` at threshold ``t`` (-1: none): ``decisions.cache.choose``
    over the entries of ``i``'s list still in the cache (added, not evicted), best first —
    the walk stops below ``t`` or after ``CANDIDATES`` candidates; a candidate answers when
    its verification passed."""
    if not sem.query[i]:
        return -1
    seen = 0
    for p in range(sem.nb_ptr[i], sem.nb_ptr[i + 1]):
        if sem.nb_sim[p] < t:
            return -1
        j = sem.nb_j[p]
        if not sem.added[j] or sem.ordinal[j] < sem.count[sem.sst[j]] - sem.max_s[j]:
            continue  # not in the cache at this threshold, or evicted
        if sem.nb_ok[p]:
            return j
        seen += 1
        if seen == CANDIDATES:
            return -1
    return -1


def _fold(t, a, ex, sem, kind, src):  # type: ignore[no-untyped-def]
    """The lookups of one threshold ``t`` (see the module docstring)."""
    for w in a.warm:
        if not np.isnan(a.store_at[w]):
            ex.seq[0] += 1
            _push(ex.pending, a.store_at[w], 0, ex.seq[0], w)
    for k in range(len(a.order)):
        i = a.order[k]
        while ex.pending.size[0] > 0 and ex.pending.t[0] < a.flush[k]:
            at, _, row = _pop(ex.pending)
            if a.skey[row] >= 0:
                _put(a.skey[row], a.store_of[row], at, row, a.max_e[row], ex)
            semantic_add(row, sem)
        key = a.lkey[i]
        if key >= 0 and _visible(key, a.ts[i], a.ttl_e[i], ex):
            kind[i], src[i] = HIT, ex.src[key]
            continue
        j = semantic_lookup(i, t, sem)
        if j >= 0:
            kind[i], src[i] = SEMANTIC_HIT, j
            continue
        kind[i] = MISS
        if not np.isnan(a.store_at[i]):
            ex.seq[0] += 1
            _push(ex.pending, a.store_at[i], 0, ex.seq[0], i)


_compiled = njit(cache=True, nogil=True)(_fold) if njit is not None else None


def _group_lists(vecs, at, q, at_i, los, his, span, floor):  # type: ignore[no-untyped-def]
    """For each query ``k`` (vector ``q[k]``, arriving at ``at_i[k]``), the rows ``r`` in
    ``[los[k], his[k])`` still visible (``at[r] + span > at_i[k]``) whose similarity is at or above
    ``floor``: (query, row, similarity) best first per query, ties in row order. Each similarity is
    a float32 dot product summed in whatever order vectorises (within
    :func:`.fold_semantic.dot_error_bound` of any other float32 evaluation)."""
    cap = 1024
    ko, ro, so = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.float32)
    n, dim = 0, vecs.shape[1]
    for k in range(len(at_i)):
        start = n
        for r in range(los[k], his[k]):
            if not at[r] + span > at_i[k]:
                continue
            acc = np.float32(0.0)
            for d in range(dim):
                acc += vecs[r, d] * q[k, d]
            if acc < floor:
                continue
            if n == cap:
                cap *= 2
                ko2, ro2, so2 = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.float32)
                ko2[:n], ro2[:n], so2[:n] = ko[:n], ro[:n], so[:n]
                ko, ro, so = ko2, ro2, so2
            p = n
            while p > start and so[p - 1] < acc:  # insertion: best first, an equal one after the earlier row
                ko[p], ro[p], so[p] = ko[p - 1], ro[p - 1], so[p - 1]
                p -= 1
            ko[p], ro[p], so[p] = k, r, acc
            n += 1
    return ko[:n], ro[:n], so[:n]


group_lists = (
    njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})(_group_lists) if njit is not None else _group_lists
)


def available() -> bool:
    """Whether the compiled fold can run (numba, the ``fast`` extra, is installed)."""
    return _compiled is not None


def semantic_state(a: Any) -> Any:
    """An empty semantic cache over the inputs' neighbour lists."""
    m = len(a.ts)
    count = np.zeros(max(a.n_sem, 1), np.int64)
    return Sem(a.sem_q, a.sem_s, a.sst, a.max_s, a.nb_ptr, a.nb_j, a.nb_sim, a.nb_ok, count,
               np.zeros(m, np.int64), np.zeros(m, np.bool_))  # fmt: skip


def fold_threshold(t: float, a: Any) -> tuple[np.ndarray, np.ndarray]:
    """(kind per row, source row per row or -1) of one threshold ``t``."""
    assert _compiled is not None
    m = len(a.store_at)  # every row: the window's, then the warm rows
    ex = exact_stores(max(a.n_keys, 1), max(a.n_stores, 1), m + 1)
    kind, src = np.zeros(m, np.int8), np.full(m, -1, np.int64)
    a = read_only(a)  # what the loop only reads, read-only whatever its origin: one signature
    _compiled(float(t), a, ex, read_only(semantic_state(a), keep=("count", "ordinal", "added")), kind, src)
    return kind, src
