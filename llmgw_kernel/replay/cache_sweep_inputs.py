"""The semantic-threshold sweep's inputs over columns: what :mod:`.cache_sweep_kernel` folds per
threshold, made from the compiled replay fold's own inputs (:mod:`.fold_inputs`,
:mod:`.fold_semantic_inputs`) — no ``Row``, ``Facts`` or ``Prepared`` object per request.

- **which requests look the cache up, when, in what order**: one run of the compiled replay
  fold (:func:`.fold_kernel.fold_arrays`) with its semantic caches off. When no budget and no
  token rate limit applies (:func:`coupled` is False), admission does not depend on the cache,
  so every threshold looks up the same requests at the same times; the order is the fold's
  event order, (lookup time, admission order);
- **when each answer enters the cache** (:func:`store_times`): the time the compiled fold
  schedules its store at — its logged store time if it ran live, else when it would have
  finished; a warm row's logged store time;
- **the neighbour lists** (:func:`neighbour_lists`, also used by the sweep over per-row objects):
  for each querying row, the rows of its semantic group stored before it and still visible
  (TTL), with similarity at or above the lowest threshold, best first, ties in insertion order;
  each distinct pair of feature codes verified once (:func:`verified`);
- **with budgets or token limits** (:func:`coupled`): the lists for every lookup any threshold
  may make, reaching the float32 error bound below the lowest threshold (:func:`coupled_lists`),
  which each threshold's compiled replay fold searches.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..decisions import cache as decide

if TYPE_CHECKING:
    from .fold import Composer
    from .fold_inputs import Inputs
    from .fold_semantic import Lists

_BYPASS, _HIT, _MISS, _SEMHIT = 1, 2, 3, 4  # the compiled fold's cache kinds (fold_kernel)


class Neighbours(NamedTuple):
    """Per row (window rows, then warm rows; CSR): its candidate rows ``j[ptr[i]:ptr[i+1]]``, best
    first, their similarity, and whether verification lets each answer it."""

    ptr: np.ndarray
    j: np.ndarray
    sim: np.ndarray
    ok: np.ndarray

    def of(self, i: int) -> range:
        return range(int(self.ptr[i]), int(self.ptr[i + 1]))


def no_neighbours(m: int) -> Neighbours:
    return Neighbours(np.zeros(m + 1, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_))


def neighbour_lists(
    groups: list[np.ndarray], stored: np.ndarray, rank: np.ndarray, ts: np.ndarray, ttl: list[float],
    queries: np.ndarray, vectors: Callable[[np.ndarray], np.ndarray], floor: float, compiled: bool = False,
) -> Neighbours:  # fmt: skip
    """For each row of ``queries`` (bool per row), the rows of its semantic group (``groups``: the
    members of each, ascending) whose answer, stored at ``stored`` (NaN: never), was visible when
    it arrived (``stored < ts < stored + ttl``), with similarity >= ``floor``, best first (ties:
    inserted first, i.e. by (store time, ``rank``) — the live order). ``vectors(rows)``: their
    embeddings as a float32 matrix. Similarities are one product over the candidate rows, as
    the live store scores (``vecs @ q``); ``ok`` is all True (see :func:`verified`).
    ``compiled``: each group's lists by :func:`.cache_sweep_kernel.group_lists` (no Python per
    query; each similarity summed in its own order, within the float32 error bound of ``vecs @
    q``'s — for a caller that allows for it, as :func:`coupled_lists` does)."""
    if compiled:
        return _compiled_lists(groups, stored, rank, ts, ttl, queries, vectors, floor)
    m = len(stored)
    counts = np.zeros(m + 1, np.int64)
    found: list[tuple[int, np.ndarray, np.ndarray]] = []
    product = one_thread_product()
    for members, span in zip(groups, ttl, strict=True):
        asking = members[queries[members]]
        if len(members) < 2 or not len(asking):
            continue
        ids = members[~np.isnan(stored[members])]
        if not len(ids):
            continue
        ids = ids[np.lexsort((rank[ids], stored[ids]))]  # the insertion order
        vecs = vectors(ids)
        at = stored[ids]
        at_i = ts[asking]
        los = np.searchsorted(at, at_i - span - 1.0, side="left").tolist()
        his = np.searchsorted(at, at_i, side="left").tolist()
        q_all = vectors(asking)
        for k, (i, lo, hi) in enumerate(zip(asking.tolist(), los, his, strict=True)):
            if hi <= lo:
                continue
            sims = product(vecs[lo:hi], q_all[k])  # as the live store scores: vecs @ q, bit for bit
            keep = np.flatnonzero((sims >= floor) & (at[lo:hi] + span > at_i[k]))
            if len(keep):
                order = keep[np.argsort(-sims[keep], kind="stable")]
                found.append((i, ids[lo + order], sims[order]))
                counts[i + 1] = len(order)
    ptr = np.cumsum(counts)
    j_all = np.empty(int(ptr[-1]), np.int64)
    sim_all = np.empty(int(ptr[-1]), np.float64)
    for i, js, sims in found:
        a, b = int(ptr[i]), int(ptr[i + 1])
        j_all[a:b], sim_all[a:b] = js, sims
    return Neighbours(ptr, j_all, sim_all, np.ones(len(j_all), np.bool_))


def one_thread_product() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``vecs @ q`` (a C-contiguous float32 matrix times a vector) with the bits numpy's OpenBLAS
    gives, without its threads. OpenBLAS multiplies a matrix of ``n`` rows on one thread below
    ``dim * n < 460,800`` (1,200 rows of 384 dimensions); above, it splits the rows into one
    chunk per thread (``gemv_thread.c``: each ``ceil(rows left / threads left)``, at least 4)
    and multiplies each chunk on one thread — so the same chunks multiplied one after the other
    (a chunk above the threshold in the kernel's own blocks, :func:`_one_thread`) give the same
    bits, without the threads' CPU (they wait for each other by spinning: ~5x the CPU of one
    thread on the shared 2-core machine, docs/benchmarks.md). The rule is checked once per
    dimension against numpy's product on random matrices (:func:`_threaded_from`); if it fails
    (another OpenBLAS), every product is numpy's own."""
    threads = _blas_threads()
    threads = threads if threads <= _MAX_THREADS else 1  # many threads: numpy's own (the check's matrices grow)

    def product(vecs: np.ndarray, q: np.ndarray) -> np.ndarray:
        n, dim = vecs.shape
        if threads <= 1 or n < _THREADED_FROM // max(dim, 1):
            return vecs @ q  # type: ignore[no-any-return]
        start = _threaded_from(dim, threads)  # checked once per process
        if not start or n < start:
            return vecs @ q  # type: ignore[no-any-return]
        out = np.empty(n, np.float32)
        for a, b in _chunks(n, threads):
            _one_thread(vecs, q, a, b, start, out)
        return out

    return product


def _one_thread(vecs: np.ndarray, q: np.ndarray, a: int, b: int, start: int, out: np.ndarray) -> None:
    """``out[a:b]``: what one OpenBLAS thread computes for rows ``[a, b)`` of ``vecs @ q``. Below
    the threshold, one call; above (a call would be threaded), the kernel's own blocks: rows four
    at a time (each block's sums do not depend on the others: calls of a multiple of four rows
    below the threshold), then the last 1-3 rows as the kernel takes them: two by its two-row
    path, one by its one-row path — a call of those 2-3 rows does the same; a last single row
    is the last of a call of three (numpy computes a one-row matrix by a dot product instead)."""
    if b - a < start:
        out[a:b] = vecs[a:b] @ q
        return
    body, step = a + (b - a) // 4 * 4, (start - 1) // 4 * 4
    for s in range(a, body, step):
        e = min(s + step, body)
        out[s:e] = vecs[s:e] @ q
    if b - body >= 2:
        out[body:b] = vecs[body:b] @ q
    elif b > body:
        out[body] = (vecs[b - 3 : b] @ q)[2]  # the last of three: the one-row path (two take a two-row one)


_MAX_THREADS = 8
_THREADED_FROM = 460_800  # OpenBLAS threads sgemv from dim * rows >= 115,200 * GEMM_MULTITHREAD_THRESHOLD (4)


def _blas_threads() -> int:
    """How many threads numpy's own OpenBLAS (the one in its wheel's ``numpy.libs``) runs, as
    threadpoolctl reads it; 1 when numpy has none."""
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    libs = os.path.realpath(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs"))
    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas" and os.path.realpath(lib["filepath"]).startswith(libs):
            return int(lib["num_threads"])
    return 1


def _chunks(n: int, threads: int) -> list[tuple[int, int]]:
    """OpenBLAS's split of ``n`` rows among ``threads`` (``gemv_thread.c``)."""
    out, a, left = [], 0, threads
    while a < n:
        w = min(max(-(-(n - a) // left), 4), n - a)
        out.append((a, a + w))
        a, left = a + w, max(left - 1, 1)
    return out


@functools.cache
def _threaded_from(dim: int, threads: int) -> int:
    """The rows from which chunked products stand in for numpy's threaded one at ``dim``, or 0
    when the chunks do not give numpy's bits on random unit vectors (sizes around the threshold,
    around twice it, and up to three times it per thread: every remainder of four)."""
    start = -(-_THREADED_FROM // dim)
    rng = np.random.default_rng(dim)
    top = 3 * start * threads
    sizes = sorted({start - 1, start, start + 1, start + 3, *range(2 * start - 4, 2 * start + 5),
                    *rng.integers(start, top, 40).tolist()})  # fmt: skip
    v = rng.standard_normal((top, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for n in sizes:
        q = v[int(rng.integers(0, len(v)))] + np.float32(0.1) * v[int(rng.integers(0, len(v)))]
        want = v[:n] @ q
        got = np.empty(n, np.float32)
        for a, b in _chunks(n, threads) if n >= start else [(0, n)]:
            _one_thread(v[:n], q, a, b, start, got)
        if not np.array_equal(want.view(np.int32), got.view(np.int32)):
            return 0
    return start


def _compiled_lists(
    groups: list[np.ndarray], stored: np.ndarray, rank: np.ndarray, ts: np.ndarray, ttl: list[float],
    queries: np.ndarray, vectors: Callable[[np.ndarray], np.ndarray], floor: float,
) -> Neighbours:  # fmt: skip
    """:func:`neighbour_lists` with each group's lists made by the compiled :func:`group_lists`."""
    from .cache_sweep_kernel import group_lists

    m = len(stored)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for members, span in zip(groups, ttl, strict=True):
        asking = members[queries[members]]
        ids = members[~np.isnan(stored[members])]
        if len(members) < 2 or not len(asking) or not len(ids):
            continue
        ids = ids[np.lexsort((rank[ids], stored[ids]))]  # the insertion order
        at, at_i = stored[ids], ts[asking]
        los = np.searchsorted(at, at_i - span - 1.0, side="left")
        his = np.searchsorted(at, at_i, side="left")
        k, r, sim = group_lists(vectors(ids), at, vectors(asking), at_i, los, his, float(span), float(floor))
        parts.append((asking[k], ids[r], sim.astype(np.float64)))
    if not parts:
        return no_neighbours(m)
    qi, j_all, sim_all = (np.concatenate(x) for x in zip(*parts, strict=True))
    by_query = np.argsort(qi, kind="stable")  # a query's entries are together and in order already
    ptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(qi, minlength=m), out=ptr[1:])
    return Neighbours(ptr, j_all[by_query], sim_all[by_query], np.ones(len(j_all), np.bool_))


def verified(nb: Neighbours, verify: np.ndarray, feat: np.ndarray, features: Any) -> Neighbours:
    """``nb`` with ``ok`` set by :func:`decide.verify` of each pair (query, candidate) whose query
    row verifies (``verify``) and both have features (``feat``: a code into ``features``, -1:
    none) — asked once per distinct pair of codes."""
    counts = np.diff(nb.ptr)
    asks = np.repeat(verify & (feat >= 0), counts[: len(verify)])
    qf = np.repeat(feat, counts[: len(feat)])
    cf = feat[nb.j]
    need = np.flatnonzero(asks & (cf >= 0))
    ok = np.ones(len(nb.j), np.bool_)
    if len(need):
        width = np.int64(max(len(features), 1))
        pairs, inverse = np.unique(qf[need] * width + cf[need], return_inverse=True)
        passed = np.array([decide.verify(features[int(k // width)], features[int(k % width)]) is None
                           for k in pairs.tolist()], np.bool_)  # fmt: skip
        ok[need] = passed[inverse]
    return nb._replace(ok=ok)


# -- from the compiled fold's inputs ---------------------------------------------------------------


def coupled(inp: Inputs) -> bool:
    """A budget or a token rate limit applies to some request: admission then depends on the cache
    (a hit costs nothing and counts no tokens), so each threshold must fold admission again."""
    g = inp.groups
    return any(g.budgets) or any(r.limit.tpm is not None for rates in g.rates for _, r in rates)


class Recorded(NamedTuple):
    """The threshold-independent part of a compiled sweep."""

    inputs: Any  # cache_sweep_kernel.SweepInputs
    fixed: np.ndarray  # object, per window row: ``bypass`` or None (the rows that do not look up)
    up_cost: np.ndarray  # float64, per row: what serving it upstream costs under the candidate
    up_has: np.ndarray  # bool: ``up_cost`` is priced
    rids: Any  # pa.ChunkedArray: request id of every row (window, then warm rows)
    targets: Any  # pa.ChunkedArray: the target that served every row
    warm_cost: Callable[[int], float | None]  # a warm row's answer at the candidate's prices


def recorded(c: Composer, inp: Inputs, floor: float) -> Recorded | None:
    """The compiled sweep's inputs for ``c`` from the compiled fold's ``inp`` (None: the compiled
    fold does not fold this replay, or admission depends on the cache)."""
    from .cache_sweep_kernel import SweepInputs
    from .fold_kernel import fold_arrays

    if coupled(inp):
        return None
    a, n = inp.arrays, c.n
    m = len(a["canon"])
    quiet = dataclasses.replace(inp, arrays={**a, "s_on": np.zeros(m, np.bool_)})  # lookups only: no semantic search
    got = fold_arrays(c, quiet)
    if got is None:
        return None
    kind = got[0].cache_kind
    order, flush = _lookups(inp, kind)
    stored = store_times(inp, m)
    rank = np.arange(m, 2 * m, dtype=np.int64)  # rows that never store: after every other (never added)
    rank[n:] = np.arange(m - n)  # warm rows first, then by lookup
    rank[order] = (m - n) + np.arange(len(order))
    nb = semantic_neighbours(inp, stored, rank, order, floor)
    sem_q = np.zeros(m, np.bool_)
    sem_q[:n] = a["sem_read"] & a["s_on"][:n]
    lkey = np.full(m, -1, np.int64)
    lkey[:n] = a["lkey"]
    ts = np.zeros(m)
    ts[:n] = a["ts"]
    sweep = SweepInputs(ts, lkey, a["skey"], a["store_of"], a["ttl"], a["max_e"], sem_q, a["s_on"], a["s_store"],
                        a["s_max_e"], stored, nb.ptr, nb.j, nb.sim, nb.ok, order, flush, a["warm"],
                        int(a["n_keys"][0]), int(a["n_stores"][0]), int(a["n_sem"][0]))  # fmt: skip
    fixed = np.full(n, None, object)
    fixed[kind == _BYPASS] = "bypass"
    d = inp.decoding
    return Recorded(sweep, fixed, a["up_cost"], a["up_has"], d.rids, d.targets, d.warm_cost)


def _lookups(inp: Inputs, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows that looked the cache up, in the fold's event order: by lookup time, then
    admission order; when each consulted the stores: its logged lookup time, else its admission)."""
    a = inp.arrays
    looked = np.flatnonzero((kind == _HIT) | (kind == _MISS) | (kind == _SEMHIT))
    admitted = np.zeros(len(kind), np.int64)
    admitted[inp.order] = np.arange(len(inp.order))
    order = looked[np.lexsort((admitted[looked], a["lookup"][looked]))].astype(np.int64)
    at = a["flush_at"][order]
    return order, np.where(np.isnan(at), a["decide"][order], at)


def store_times(inp: Inputs, m: int) -> np.ndarray:
    """When each row's answer enters the cache if it misses (NaN: it stores nothing), as the
    compiled fold schedules it: a request that ran upstream live at its logged store time
    (``entry_at``; NaN if it stored nothing), one that runs only in replay when it would have
    finished (``up_at``, not before its lookup); a warm row at its logged store time."""
    a = inp.arrays
    n = len(a["ts"])
    stored = np.full(m, np.nan)
    rows = inp.order[(a["skey"][inp.order] >= 0) | a["s_on"][inp.order]]  # admitted, with a plan, storing somewhere
    stored[rows] = np.where(a["ran_live"][rows], a["entry_at"][rows], np.maximum(a["up_at"][rows], a["lookup"][rows]))
    warm = a["warm"][a["warm"] >= n]
    stored[warm] = a["entry_at"][warm]
    return stored


def coupled_lists(inp: Inputs, floor: float) -> Lists:
    """The neighbour lists a coupled sweep's compiled folds search (:func:`.fold_semantic.searching`),
    for every row that may look a semantic cache up under some threshold.

    Which requests are admitted, and so which look up and which store, depends on the threshold;
    when and where each does does not: a row looks up at its lookup time and stores at its store
    time (:func:`store_times`) whatever else is admitted. So one list per possible lookup holds
    every row of its group that may be visible then (stored before its arrival, within the TTL),
    best first; a fold walks only those still in its store. Their similarities are one product
    of their own, which can differ from the store's (a similarity's bits depend on the row's place
    in the store's product) by at most ``delta`` (:func:`.fold_semantic.dot_error_bound`; so they
    are summed by a compiled loop, :func:`.cache_sweep_kernel.group_lists`): the lists reach more
    than ``delta`` below ``floor``, and a lookup they cannot decide for certain is scored
    by the store itself."""
    from .fold_semantic import Lists, dot_error_bound

    a = inp.arrays
    n, m = len(a["ts"]), len(a["canon"])
    mats = [x for x in (a["s_mat0"], a["s_mat1"]) if x.size]
    if not mats:
        return Lists(np.zeros(m + 1, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_), 0.0,
                     np.zeros(2, np.int64))  # fmt: skip
    norm = max(float(np.sqrt(np.einsum("ij,ij->i", x, x).max())) for x in mats)
    delta = dot_error_bound(mats[0].shape[1], norm)
    admitted = np.empty(n, np.int64)
    admitted[inp.order] = np.arange(len(inp.order))
    rank = np.arange(m, 2 * m, dtype=np.int64)  # insertion order at equal store times: warm rows, then by lookup
    warm = np.asarray(a["warm"], np.int64)
    rank[warm] = np.arange(len(warm))
    rank[np.lexsort((admitted, a["lookup"]))] = len(warm) + np.arange(n)
    may = np.flatnonzero(a["sem_read"] & a["s_on"][:n])
    reach = floor - 2 * delta  # more than delta below, whatever the float32 rounding of the comparison
    nb = semantic_neighbours(inp, store_times(inp, m), rank, may, reach, compiled=True)
    return Lists(nb.ptr, nb.j, nb.sim, nb.ok, delta, np.zeros(2, np.int64))


def semantic_neighbours(
    inp: Inputs, stored: np.ndarray, rank: np.ndarray, order: np.ndarray, floor: float, compiled: bool = False
) -> Neighbours:
    """:func:`neighbour_lists` of the rows in ``order`` that read a semantic cache, verified."""
    a = inp.arrays
    m = len(stored)
    on = a["s_on"]
    members = np.flatnonzero(on)
    if not len(members):
        return no_neighbours(m)
    members = members[np.argsort(a["s_group"][members], kind="stable")]
    cuts = np.flatnonzero(np.diff(a["s_group"][members])) + 1
    groups = np.split(members, cuts)
    queries = np.zeros(m, np.bool_)
    queries[order] = a["sem_read"][order] & on[order]
    mats, which, vi = (a["s_mat0"], a["s_mat1"]), a["s_mat"], a["s_vi"]

    def vectors(rows: np.ndarray) -> np.ndarray:
        if not which[rows].any():
            return mats[0][vi[rows]]  # type: ignore[no-any-return]
        out = np.empty((len(rows), mats[0].shape[1]), np.float32)
        for k in (0, 1):
            at = np.flatnonzero(which[rows] == k)
            out[at] = mats[k][vi[rows[at]]]
        return out

    ts = np.zeros(m)
    ts[: len(a["ts"])] = a["ts"]
    spans = [float(a["s_ttl"][g[0]]) for g in groups]
    nb = neighbour_lists(groups, stored, rank, ts, spans, queries, vectors, floor, compiled)
    return verified(nb, a["s_verify"], a["s_feat"], a["s_features"])
