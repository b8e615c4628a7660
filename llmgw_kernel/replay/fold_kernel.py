"""The composed fold (:meth:`.fold.Composer.run`) compiled with numba: the same decisions, from
integer-coded columns (:mod:`.fold_inputs`), at a few microseconds per request.

The kernel mirrors the Python fold operation for operation, so its results are equal, not close:

- the same event order — admissions in ``Composer.order``; cache lookups (prio 0) and
  settlements (prio 1) on a heap ordered by (time, prio, sequence);
- the same integer operations (nano-dollars, as :class:`Limits` counts): ``reserved[b] += worst``,
  ``reserved[b] -= worst``, ``committed[b] += cost``, and the refusal test
  ``spent + held >= usd``;
- :class:`~llmgw_kernel.decisions.limits.RateWindow` as 60 one-second buckets in a ring with
  running totals and the tokens reserved in flight;
- :class:`~llmgw_kernel.cache.exact.ExactStore` per route: visible iff ``stored_at < ts <
  stored_at + ttl``, FIFO eviction by insertion, a refreshed key moving to the back; answers
  enter it from a heap of pending stores flushed at each lookup, as ``CacheState`` does.

What the Python fold sweeps away (idle rate windows, spend of past calendar windows) is never
read again, so the kernel keeps it. ``Folded.limits`` is the start state, not the end state
(no caller reads the end state). :func:`run_compiled` returns None when numba is missing or
the replay has something the kernel does not fold (see :func:`.fold_inputs.inputs`); the
caller then runs the Python fold.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections import namedtuple
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from ..decisions import cache as decide
from ..decisions.cache import NO_CACHE
from ..decisions.limits import NANO, Limits, budget_refusal, rate_refusal
from . import fates, fold_semantic
from .cache_stage import Outcome
from .columns import numbers, optional_objects
from .fold import Folded
from .fold_borrow import borrow
from .fold_codes import factorize
from .fold_inputs import WINDOWS, Inputs, inputs
from .fold_semantic import DECLINED, POOL_FULL, sem_add, sem_lookup
from .jit import jit as _jit
from .jit import jit_entry as _jit_entry
from .jit import njit, read_only

if TYPE_CHECKING:
    from .fold import Composer

log = logging.getLogger("llmgw.replay")

CAP = 64  # rate-window ring size: at most 60 one-second buckets are live (fold_inputs seeds the same)

#: the limits: groups' budgets/commits/rates (CSR), series -> buckets, per-row admission facts
Lim = namedtuple(
    "Lim",
    "series_off series_kind widx group decide worst rtok rid flight committed reserved gb_ptr gb_series gb_usd "
    "gb_hard gc_ptr gc_series gr_ptr gr_win gr_rpm gr_tpm gw_ptr gw_win g_tracked",
)
#: the rate windows: a ring of one-second buckets per (scope, who), running totals, tokens in flight
RW = namedtuple("RW", "sec req tok head len requests tokens reserved")
#: the exact stores (entries by key code, a FIFO queue per store) and the heap of pending stores
Ex = namedtuple("Ex", "present stored_at src version count q_key q_version q_next head tail queued pending seq")
#: a heap of (time, prio, seq) -> row: the events, and the stores pending (``pending``, prio 0)
Heap = namedtuple("Heap", "t prio seq row size")
#: per-row cache and serving facts
C = namedtuple(
    "C",
    "reached bypass lkey skey ts flush_at ttl ran_live entry_at hit_logged store_of max_e canon lookup "
    "settle_logged up_cost up_has up_tok up_at hit_s n sem_logged sem_read check check_src",
)
#: what the fold decided per row
Out = namedtuple(
    "Out",
    "adm_kind adm_j adm_col adm_spent adm_held cache_kind cache_src served_by cost cost_has saved saved_has saved_warm",
)
_ADMITTED, _BUDGET, _RATE = 1, 2, 3  # admission kinds
_BYPASS, _HIT, _MISS, _SEMHIT = 1, 2, 3, 4  # cache kinds (0: did not reach a cache)
_UP, _CACHE, _REFUSED, _CHECK = 1, 2, 3, 5  # served by (4: unknown model, set after the fold)
#: the semantic state's fields the kernel writes (the others are its inputs: passed read-only)
_SEM_WRITTEN = tuple(
    f for f in fold_semantic.Sem._fields[10:] if f not in ("nb_ptr", "nb_j", "nb_sim", "nb_ok", "nb_delta")
)


# -- heaps: (time, prio, seq) -> row -----------------------------------------------------------


# The sift loops take the arrays once and compare/swap in place: a helper per compare would
# take (and release) a reference to each array every time, atomically, in the innermost loop.


@_jit
def _push(h, at, prio, seq, row):  # type: ignore[no-untyped-def]
    t, p, s, r = h.t, h.prio, h.seq, h.row
    k = h.size[0]
    h.size[0] += 1
    while k > 0:  # move parents down until the new entry's place is found
        u = (k - 1) >> 1
        if not (at < t[u] or (at == t[u] and (prio < p[u] or (prio == p[u] and seq < s[u])))):
            break
        t[k], p[k], s[k], r[k] = t[u], p[u], s[u], r[u]
        k = u
    t[k], p[k], s[k], r[k] = at, prio, seq, row


@_jit
def _pop(h):  # type: ignore[no-untyped-def]
    """Remove the first entry; returns (time, prio, row)."""
    t, p, s, r = h.t, h.prio, h.seq, h.row
    first_t, first_p, first_r = t[0], p[0], r[0]
    h.size[0] -= 1
    n = h.size[0]
    if n > 0:
        at, prio, seq, row = t[n], p[n], s[n], r[n]  # the last entry, sifted down from the root
        k = 0
        while True:
            c = 2 * k + 1
            if c >= n:
                break
            d = c + 1
            if d < n and (t[d] < t[c] or (t[d] == t[c] and (p[d] < p[c] or (p[d] == p[c] and s[d] < s[c])))):
                c = d
            if not (t[c] < at or (t[c] == at and (p[c] < prio or (p[c] == prio and s[c] < seq)))):
                break
            t[k], p[k], s[k], r[k] = t[c], p[c], s[c], r[c]
            k = c
        t[k], p[k], s[k], r[k] = at, prio, seq, row
    return first_t, first_p, first_r


# -- rate windows (RateWindow) -------------------------------------------------------------------


@_jit
def _expire(w, at, rw):  # type: ignore[no-untyped-def]
    horizon = np.int64(np.floor(at)) - 59
    while rw.len[w] > 0 and rw.sec[w, rw.head[w]] < horizon:
        h = rw.head[w]
        rw.requests[w] -= rw.req[w, h]
        rw.tokens[w] -= rw.tok[w, h]
        rw.head[w] = (h + 1) % CAP
        rw.len[w] -= 1


@_jit
def _add(w, at, nreq, ntok, rw):  # type: ignore[no-untyped-def]
    """Count at ``at``; False when the ring is full (the caller falls back to Python)."""
    _expire(w, at, rw)
    s = np.int64(np.floor(at))
    last = (rw.head[w] + rw.len[w] - 1) % CAP
    if rw.len[w] == 0 or rw.sec[w, last] < s:
        if rw.len[w] == CAP:
            return False
        k = (rw.head[w] + rw.len[w]) % CAP
        rw.sec[w, k], rw.req[w, k], rw.tok[w, k] = s, nreq, ntok
        rw.len[w] += 1
    else:
        rw.req[w, last] += nreq
        rw.tok[w, last] += ntok
    rw.requests[w] += nreq
    rw.tokens[w] += ntok
    return True


# -- the exact stores (ExactStore) ---------------------------------------------------------------


@_jit
def _put(k, store, stored, src, max_entries, ex):  # type: ignore[no-untyped-def]
    if ex.present[k]:
        ex.count[store] -= 1
    ex.version[k] += 1
    ex.present[k] = True
    ex.stored_at[k], ex.src[k] = stored, src
    ex.count[store] += 1
    j = ex.queued[0]
    ex.queued[0] += 1
    ex.q_key[j], ex.q_version[j], ex.q_next[j] = k, ex.version[k], -1
    if ex.tail[store] >= 0:
        ex.q_next[ex.tail[store]] = j
    else:
        ex.head[store] = j
    ex.tail[store] = j
    while ex.count[store] > max_entries:
        j = ex.head[store]
        ex.head[store] = ex.q_next[j]
        if ex.head[store] < 0:
            ex.tail[store] = -1
        kk = ex.q_key[j]
        if ex.present[kk] and ex.version[kk] == ex.q_version[j]:
            ex.present[kk] = False
            ex.count[store] -= 1


@_jit
def _visible(k, ts, ttl, ex):  # type: ignore[no-untyped-def]
    """``ExactStore.get``: key ``k`` holds an answer stored before ``ts`` and alive at ``ts``."""
    return ex.present[k] and ex.stored_at[k] < ts < ex.stored_at[k] + ttl


@_jit
def _flush(until, c, ex, sx):  # type: ignore[no-untyped-def]
    """Put every answer stored before ``until`` into its stores (``CacheState.flush``)."""
    sm = sx[0]
    while ex.pending.size[0] > 0 and ex.pending.t[0] < until:
        at, _, row = _pop(ex.pending)
        if c.skey[row] >= 0:
            _put(c.skey[row], c.store_of[row], at, c.canon[row], c.max_e[row], ex)
        if sm.on[row]:
            sem_add(row, at, sm)


# -- limits (Limits.admit / settle / commit) -----------------------------------------------------


@_jit
def _bucket(series, row, lim):  # type: ignore[no-untyped-def]
    return lim.series_off[series] + lim.widx[lim.series_kind[series], row]


@_jit
def _nano(usd):  # type: ignore[no-untyped-def]
    """``decisions.limits.nano``: ``round(usd * NANO)``, half to even (``fold_inputs.fits_nano``
    checked every cost the kernel rounds fits int64)."""
    return np.int64(np.rint(usd * 1e9))


@_jit
def _commit(row, has, amount, lim):  # type: ignore[no-untyped-def]
    if not has or amount == 0:  # nano-dollars, as Limits.commit counts them
        return
    g = lim.group[row]
    for j in range(lim.gc_ptr[g], lim.gc_ptr[g + 1]):
        b = _bucket(lim.gc_series[j], row, lim)
        lim.committed[b] = lim.committed[b] + amount


@_jit
def _admit(i, lim, rw, out):  # type: ignore[no-untyped-def]
    g, at = lim.group[i], lim.decide[i]
    for j in range(lim.gr_ptr[g], lim.gr_ptr[g + 1]):
        w = lim.gr_win[j]
        _expire(w, at, rw)
        if lim.gr_rpm[j] >= 0 and rw.requests[w] >= lim.gr_rpm[j]:
            out.adm_kind[i], out.adm_j[i], out.adm_col[i] = _RATE, j, 1
            return True
        if lim.gr_tpm[j] >= 0 and rw.tokens[w] + rw.reserved[w] >= lim.gr_tpm[j]:
            out.adm_kind[i], out.adm_j[i], out.adm_col[i] = _RATE, j, 2
            return True
    for j in range(lim.gb_ptr[g], lim.gb_ptr[g + 1]):
        b = _bucket(lim.gb_series[j], i, lim)
        spent, held = lim.committed[b], lim.reserved[b]
        if spent + held >= lim.gb_usd[j] and lim.gb_hard[j]:
            out.adm_kind[i], out.adm_j[i], out.adm_spent[i], out.adm_held[i] = _BUDGET, j, spent, held
            return True
    for j in range(lim.gb_ptr[g], lim.gb_ptr[g + 1]):
        b = _bucket(lim.gb_series[j], i, lim)
        lim.reserved[b] = lim.reserved[b] + lim.worst[i]
    for j in range(lim.gw_ptr[g], lim.gw_ptr[g + 1]):
        w = lim.gw_win[j]
        if not _add(w, at, 1, 0, rw):
            return False
        rw.reserved[w] += lim.rtok[i]
    lim.flight[lim.rid[i]] = i
    out.adm_kind[i] = _ADMITTED
    return True


@_jit
def _settle(i, at, lim, rw, c, out):  # type: ignore[no-untyped-def]
    fl = lim.flight[lim.rid[i]]
    if fl < 0:
        return True
    lim.flight[lim.rid[i]] = -1
    g = lim.group[fl]
    for j in range(lim.gb_ptr[g], lim.gb_ptr[g + 1]):
        b = _bucket(lim.gb_series[j], fl, lim)
        lim.reserved[b] = lim.reserved[b] - lim.worst[fl]
    up = out.served_by[i] == _UP  # else served from a cache: no cost, no tokens
    _commit(fl, out.cost_has[i], _nano(c.up_cost[i]) if up else 0, lim)
    for j in range(lim.gw_ptr[g], lim.gw_ptr[g + 1]):
        w = lim.gw_win[j]
        rw.reserved[w] = max(0, rw.reserved[w] - lim.rtok[fl])
        if not _add(w, at, 0, c.up_tok[i] if up else 0, rw):
            return False
    return True


# -- the fold ------------------------------------------------------------------------------------


@_jit
def _lookup(i, c, ex, sx, kx):  # type: ignore[no-untyped-def]
    """``Caches.lookup`` of ``i`` (it reached a cache and does not bypass it): (kind, source row)."""
    k = c.lkey[i]
    if k >= 0 and _visible(k, c.ts[i], c.ttl[i], ex):
        return _HIT, ex.src[k]
    sm, so, mats = sx
    if c.sem_read[i] and sm.on[i]:
        j = sem_lookup(i, c.ts[i], kx, mats, sm, so)
        if j >= 0:
            return _SEMHIT, c.canon[j]
    return _MISS, -1


@_jit
def _serve(i, at_lookup, c, ex, ev, out, sx, kx):  # type: ignore[no-untyped-def]
    """Look ``i`` up (if it reaches a cache), serve it, schedule its store and settlement."""
    kind = 0
    src = -1
    if c.reached[i]:
        _flush(at_lookup if np.isnan(c.flush_at[i]) else c.flush_at[i], c, ex, sx)
        if sx[0].flag[0]:
            return
        kind = _BYPASS if c.bypass[i] else _MISS
        if kind == _MISS:
            kind, src = _lookup(i, c, ex, sx, kx)
    out.cache_kind[i], out.cache_src[i] = kind, src
    if kind in (_HIT, _SEMHIT):
        out.served_by[i], cost, has = _CACHE, 0.0, True
        if kind == _HIT:
            at = c.settle_logged[i] if c.hit_logged[i] else at_lookup + c.hit_s[0]
        else:
            at = c.settle_logged[i] if c.sem_logged[i] else at_lookup + c.hit_s[1]
        if src < c.n[0]:
            out.saved[i], out.saved_has[i] = out.cost[src], out.cost_has[src]
        else:
            out.saved_warm[i] = True
    else:
        out.served_by[i], cost, has, at = _UP, c.up_cost[i], c.up_has[i], c.up_at[i]
        if kind == _MISS and (c.skey[i] >= 0 or sx[0].on[i]):
            stored = np.nan
            if not c.ran_live[i]:
                stored = max(at, at_lookup)
            elif not np.isnan(c.entry_at[i]):
                stored = c.entry_at[i]
            if not np.isnan(stored):
                ex.seq[0] += 1
                _push(ex.pending, stored, 0, ex.seq[0], i)
    out.cost[i], out.cost_has[i] = cost, has  # its nano-dollars and tokens: c.up_* when served upstream, else 0
    ex.seq[0] += 1
    _push(ev, max(at, at_lookup), 1, ex.seq[0], i)


@_jit
def _charge_check(i, c, out, lim):  # type: ignore[no-untyped-def]
    """Commit check ``i``'s cost (``Composer._checked_hit``): only if the candidate served its
    hit from the semantic cache too (or the hit lies outside the window); else it costs 0."""
    s = c.check_src[i]
    if s >= 0 and out.cache_kind[s] != _SEMHIT:
        return
    out.cost[i], out.cost_has[i] = c.up_cost[i], c.up_has[i]
    _commit(i, c.up_has[i], _nano(c.up_cost[i]), lim)


@_jit
def _drain(until, lim, rw, c, ex, ev, out, sx, kx):  # type: ignore[no-untyped-def]
    """Apply the lookups and settlements before ``until``; 0, else why the kernel stops (1: a
    rate window overflowed; :data:`DECLINED`, :data:`POOL_FULL`: the semantic cache's)."""
    while ev.size[0] > 0 and ev.t[0] < until:
        at, prio, i = _pop(ev)
        if prio == 0:
            _serve(i, at, c, ex, ev, out, sx, kx)
            if sx[0].flag[0]:
                return sx[0].flag[0]
        elif c.check[i]:
            _charge_check(i, c, out, lim)
        elif lim.g_tracked[lim.group[i]]:
            if not _settle(i, at, lim, rw, c, out):
                return 1
        else:  # not tracked by any limit: its spend still counts, in its arrival window
            _commit(i, out.cost_has[i], _nano(c.up_cost[i]) if out.served_by[i] == _UP else 0, lim)
    return 0


@_jit_entry
def _fold(order, warm, lim, rw, c, ex, ev, out, sx, kx):  # type: ignore[no-untyped-def]
    """``Composer.run``: 0 when folded, else why it stopped (see :func:`_drain`). ``kx``: (sgemv,
    sdot, verification token, number of features codes); the verdicts' memo is made here (a
    typed dict made in Python compiles its constructor in every process: ~0.13 CPU s)."""
    order, warm, lim, rw, c, ex, ev, out, sx = borrow((order, warm, lim, rw, c, ex, ev, out, sx))  # no ref counts
    kx = (kx[0], kx[1], kx[2], fold_semantic.new_memo(), kx[3])
    for w in warm:
        if c.skey[w] >= 0 or sx[0].on[w]:
            ex.seq[0] += 1
            _push(ex.pending, c.entry_at[w], 0, ex.seq[0], w)
    n = len(order)
    for k in range(n + 1):  # one call site of _drain (inlined: a second one doubled the compile)
        stop = _drain(lim.decide[order[k]] if k < n else np.inf, lim, rw, c, ex, ev, out, sx, kx)
        if stop or k == n:
            return stop
        i = order[k]
        if c.check[i]:  # never admitted, never looked up: its cost is committed when it finished
            out.served_by[i], out.cost[i], out.cost_has[i] = _CHECK, 0.0, True
            ex.seq[0] += 1
            _push(ev, c.up_at[i], 1, ex.seq[0], i)
            continue
        if lim.g_tracked[lim.group[i]]:
            if not _admit(i, lim, rw, out):
                return 1
            if out.adm_kind[i] != _ADMITTED:
                out.served_by[i], out.cost[i], out.cost_has[i] = _REFUSED, 0.0, True
                continue
        ex.seq[0] += 1
        _push(ev, c.lookup[i], 0, ex.seq[0], i)
    return 0  # (not reached: the loop returns after its last drain)


# -- Python side ---------------------------------------------------------------------------------


def run_compiled(composer: Composer) -> Folded | None:
    """``composer.run()`` (default index, no threshold override) by the compiled kernel; None
    when numba is not installed or the replay has something the kernel does not fold."""
    if njit is None:
        return None
    inp = inputs(composer)
    if inp is None:
        return None
    try:
        kernel = fold_arrays(composer, inp)
    except Exception as exc:  # e.g. a compiled cache left by another release that numba cannot load
        log.warning("the compiled replay fold failed (%s: %s); the Python fold runs", type(exc).__name__, exc)
        return None
    if kernel is None:
        return None
    # folded: of the inputs, only the calendar windows are read again (to word refusals), then none
    widx = inp.arrays["widx"]
    inp.arrays.clear()
    inp.arrays["widx"] = widx
    result = FoldedArrays(composer, inp, *kernel)
    inp.arrays.clear()  # decoded: only the decoding facts and the kernel's output stay with the result
    return result


def fold_arrays(composer: Composer, inp: Inputs) -> tuple[Any, Any, list[str]] | None:
    """Run the kernel over ``inp``: (its output, the semantic lookups' similarities and reasons,
    the verification reasons they name), or None when it stopped (see :func:`_drain`)."""
    a = inp.arrays
    n_on = int(a["s_on"].sum())
    # numpy's BLAS when found (a ctypes lookup), whether or not a row calls it: no-op cfuncs are
    # only for a numpy without it (each cfunc is another library for numba to load)
    fns = fold_semantic.blas() if n_on else (fold_semantic.blas() or fold_semantic.no_blas())
    if fns is None:
        return None
    token = fold_semantic.register(_verdicts(a["s_features"]))
    try:
        pool = 4 * n_on + 16 * int(a["n_sem"][1]) + 64  # slots; grown if a replay needs more
        while True:
            state = _state(composer, inp)
            facts = {k: a["s_" + k] for k in fold_semantic.Sem._fields[:10]}
            n_stores, n_groups = (int(x) for x in a["n_sem"])
            sm = fold_semantic.state(facts, len(a["canon"]), n_stores, n_groups, a["s_mat0"].shape[1], pool)
            sm = read_only(sm, keep=_SEM_WRITTEN)  # what the kernel only reads, read-only (see _state)
            # without a semantic row the kernel never writes them: made after it (8 MB less at its peak)
            size = composer.n if n_on else 0
            so = fold_semantic.SemOut(np.full(size, np.nan), np.zeros(size, np.int64))
            kx = (*fns, token, max(len(a["s_features"]), 1))
            with warnings.catch_warnings():  # the BLAS call is a first-class function ("experimental")
                warnings.simplefilter("ignore", fold_semantic.ExperimentalWarning)
                mats = read_only((a["s_mat0"], a["s_mat1"]))
                folded = _fold(read_only(inp.order), read_only(a["warm"]), *state, (sm, so, mats), kx)
            if folded != POOL_FULL:
                break
            pool *= 4
    finally:
        reasons = fold_semantic.release(token)
    if folded == DECLINED:
        log.info("a semantic group outgrew exact search (live: hnswlib): the Python fold runs")
    if folded != 0:
        return None
    if not n_on:
        so = fold_semantic.SemOut(np.full(composer.n, np.nan), np.zeros(composer.n, np.int64))
    return state[-1], so, reasons


def _verdicts(features: np.ndarray) -> Any:
    """What the kernel asks verification (features codes -> 0: passes, 1 + k: the ``k``-th
    distinct reason); the reasons are in the function's ``reasons`` list."""
    reasons: list[str] = []
    index: dict[str, int] = {}

    def verdict(qf: int, cf: int) -> int:
        why = decide.verify(features[qf], features[cf])
        if why is None:
            return 0
        if why not in index:
            index[why] = len(reasons)
            reasons.append(why)
        return 1 + index[why]

    verdict.reasons = reasons  # type: ignore[attr-defined]
    return verdict


def exact_stores(keys: int, stores: int, entries: int) -> Any:
    """Empty exact stores for ``keys`` key codes in ``stores`` stores, room for ``entries`` puts.
    Rows, key codes, versions and queue slots are int32 (each is below the window's rows; see
    :data:`ROWS_MAX`)."""
    i64, i32 = np.int64, np.int32
    return Ex(
        np.zeros(keys, np.bool_), np.zeros(keys), np.zeros(keys, i32), np.zeros(keys, i32), np.zeros(stores, i64),
        np.zeros(entries, i32), np.zeros(entries, i32), np.zeros(entries, i32), np.full(stores, -1, i64),
        np.full(stores, -1, i64), np.zeros(1, i64), _heap(entries), np.zeros(1, i64),
    )  # fmt: skip


def _heap(size: int) -> Any:
    """An empty heap of ``size`` entries: (time float64, prio int8, seq int64) -> row int32."""
    return Heap(np.zeros(size), np.zeros(size, np.int8), np.zeros(size, np.int64), np.zeros(size, np.int32),
                np.zeros(1, np.int64))  # fmt: skip


def _state(c: Composer, inp: Inputs) -> tuple[Any, ...]:
    """The kernel's state, seeded from the inputs."""
    a, n, m = inp.arrays, c.n, len(inp.arrays["canon"])
    groups = inp.groups
    tracked = np.array([bool(b or r) for b, r in zip(groups.budgets, groups.rates, strict=True)], np.bool_)
    flight = np.full(max(int(a["rid"].max(initial=0)) + 1, 1), -1, np.int32)
    # the fold changes the state it starts from: it starts from copies (the inputs can be folded again)
    mutable = {k: a[k].copy() for k in ("committed", "reserved", *("rw_" + f for f in RW._fields))}
    lim = Lim._make(
        [*(a[k] for k in Lim._fields[:8]), flight, *(mutable.get(k, a[k]) for k in Lim._fields[9:-1]), tracked]
    )
    # what the kernel only reads is passed read-only whatever its origin (a column of Arrow memory
    # is read-only, a computed one writable): numba types writability, one signature, one compile
    lim = read_only(lim, keep=("flight", "committed", "reserved"))
    rw = RW(*(mutable["rw_" + k] for k in RW._fields))
    ex = exact_stores(int(a["n_keys"][0]), int(a["n_stores"][0]), m)
    cin = read_only(C(*(a[k] for k in C._fields)))
    ev = _heap(n + 1)  # one event per row at a time: its lookup, then its settlement
    z = lambda dt=np.int64: np.zeros(n, dt)  # noqa: E731
    out = Out(z(np.int8), z(np.int32), z(np.int8), z(), z(), z(np.int8), z(np.int32), z(np.int8),
              z(np.float64), z(np.bool_), z(np.float64), z(np.bool_), z(np.bool_))  # fmt: skip
    return lim, rw, cin, ex, ev, out


#: what a :class:`FoldedArrays` keeps of the kernel's :data:`Out` once its refusals are worded
Kept = namedtuple("Kept", "adm_kind cache_kind cache_src served_by cost cost_has saved saved_has saved_warm")
#: the fields of :data:`Kept` a column alone is made of (released once it is made)
_MADE_OF = {"cost": ("cost", "cost_has"), "saved": ("saved", "saved_has", "saved_warm")}

_SERVED = np.array(fates.SERVED, dtype=object)
_ADMISSION = np.array(fates.ADMISSION, dtype=object)
_CACHE_KIND = np.array(fates.CACHE_KIND, dtype=object)


class FoldedArrays(Folded):
    """A ``Folded`` made from the kernel's arrays: each per-request list is made when first read
    (the stages read :attr:`cache_kind` and :attr:`cache_source_rid`, not :attr:`cache`, whose
    :class:`Outcome` objects need the composer's per-row cache objects)."""

    def __init__(self, c: Composer, inp: Inputs, out: Any, so: Any, reasons: list[str]) -> None:  # noqa: D107
        self._c, self._inp, self._out, self._so, self._why = c, inp, out, so, reasons  # (no super: lists are lazy)
        self._columns: dict[str, np.ndarray] = {}
        d = inp.decoding
        out.served_by[d.unrouted_check], out.cost_has[d.unrouted_check] = _CHECK, True  # no plan: never spent
        served = out.served_by.copy()
        served[d.unknown_model] = 4
        self.served_code = served
        self.limits = Limits(timezone=c.start.timezone)
        self._reasons = self._refusals()
        rows = np.flatnonzero((served == _UP) & (d.unpriced_of >= 0))
        for k in np.unique(d.unpriced_of[rows]).tolist():
            c.costs.unpriced |= d.unpriced[k]
        self.unpriced = set(c.costs.unpriced)
        # the admission facts are worded: only what the columns and summaries read stays (~40 MB less at 1M rows)
        self._out = Kept(*(getattr(out, k) for k in Kept._fields))

    def _refusals(self) -> tuple[np.ndarray, np.ndarray]:
        """(reason, limit) of every refused request (object arrays, None elsewhere): worded once
        per distinct (limit, window, spent, held) — a limit refuses many requests alike."""
        out, inp = self._out, self._inp
        n = len(out.adm_kind)
        reasons, limits = np.full(n, None, object), np.full(n, None, object)
        budget = np.flatnonzero(out.adm_kind == _BUDGET)
        if len(budget):
            j = out.adm_j[budget]
            kinds = np.array([WINDOWS.index(b.limit.window) for b in inp.budget_flat], np.int64)
            end = inp.arrays["widx"][kinds[j], budget]
            code, first = factorize(j, end, out.adm_spent[budget], out.adm_held[budget])
            worded = []
            for r in first.tolist():
                b = inp.budget_flat[int(j[r])]
                end_at = inp.window_ends[WINDOWS.index(b.limit.window)][int(end[r])]
                spent, held = int(out.adm_spent[budget[r]]) / NANO, int(out.adm_held[budget[r]]) / NANO
                worded.append(budget_refusal(b, spent, held, end_at))
            reasons[budget], limits[budget] = (_spread([w[k] for w in worded], code) for k in (0, 1))
        rate = np.flatnonzero(out.adm_kind == _RATE)
        if len(rate):
            j, col = out.adm_j[rate], out.adm_col[rate]
            code, first = factorize(j, col)
            worded = [rate_refusal(inp.rate_flat[int(j[r])], int(col[r])) for r in first.tolist()]
            reasons[rate], limits[rate] = (_spread([w[k] for w in worded], code) for k in (0, 1))
        return reasons, limits

    def column(self, name: str) -> np.ndarray:
        """A per-request field from the kernel's arrays (no list on the way), made once: the
        stages' columns and summaries read the same array (read it, do not change it). Strings
        as object arrays (``cache_source_rid``: an Arrow string array), floats (``cost``,
        ``saved``, ``cache_similarity``) as :func:`.columns.numbers` — float64 with NaN, not 1M
        Python floats (the frame's dtypes are the same: pandas reads float | None as float64)."""
        got = self._columns.get(name)
        if got is None:
            got = self._columns[name] = self._column(name)
            # the kernel's arrays only this column is made of are freed (the column is a copy when some are unknown)
            self._out = self._out._replace(**dict.fromkeys(_MADE_OF.get(name, ()), None))
        return got

    def codes(self, name: str) -> np.ndarray:
        """A decision (``admission``, ``cache_kind``, ``served_by``) as the kernel's int8 codes
        into :data:`.fates.LABELS` [name] (the array itself: read it, do not change it)."""
        out = self._out
        return {"admission": out.adm_kind, "cache_kind": out.cache_kind, "served_by": self.served_code}[name]  # type: ignore[no-any-return]

    def _column(self, name: str) -> np.ndarray:
        out, d = self._out, self._inp.decoding
        if name in ("admission_reason", "admission_limit"):
            return self._reasons[name == "admission_limit"]
        if name == "cost":
            return numbers(out.cost, out.cost_has)  # type: ignore[no-any-return]
        if name == "saved":
            saved = np.where(out.saved_has, out.saved, np.nan)
            for i in np.flatnonzero(out.saved_warm).tolist():
                warm = d.warm_cost(int(out.cache_src[i]))
                saved[i] = np.nan if warm is None else warm
            return numbers(saved, ~np.isnan(saved))  # type: ignore[no-any-return]
        if name == "cache_source_rid":  # Arrow strings: ~260k sources at 1M rows, no Python str each
            hit = (out.cache_kind == _HIT) | (out.cache_kind == _SEMHIT)
            if not hit.any():
                return np.full(len(hit), None, object)  # as pandas reads a list of None
            rids = d.rids.take(pa.array(np.where(hit, out.cache_src, 0), mask=~hit))
            return rids.combine_chunks() if isinstance(rids, pa.ChunkedArray) else rids  # type: ignore[no-any-return]
        if name == "cache_similarity":  # of the best semantic candidate: misses and semantic hits
            sim = self._so.sim
            return numbers(sim, ((out.cache_kind == _MISS) | (out.cache_kind == _SEMHIT)) & ~np.isnan(sim))  # type: ignore[no-any-return]
        table = {"admission": _ADMISSION, "served_by": _SERVED, "cache_kind": _CACHE_KIND}[name]
        return table[self.codes(name)]  # type: ignore[no-any-return]

    def source_targets(self, rows: np.ndarray) -> list[str | None]:
        src = self._out.cache_src[rows]
        return self._inp.decoding.targets.take(pa.array(src, pa.int64())).to_pylist()  # type: ignore[no-any-return]

    @functools.cached_property
    def admission(self) -> list[str | None]:  # type: ignore[override]
        return self.column("admission").tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def admission_reason(self) -> list[str | None]:  # type: ignore[override]
        return self.column("admission_reason").tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def admission_limit(self) -> list[str | None]:  # type: ignore[override]
        return self.column("admission_limit").tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def served_by(self) -> list[str | None]:  # type: ignore[override]
        return self.column("served_by").tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def cost(self) -> list[float | None]:  # type: ignore[override]
        return optional_objects(self.column("cost")).tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def saved(self) -> list[float | None]:  # type: ignore[override]
        return optional_objects(self.column("saved")).tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def cache_kind(self) -> list[str | None]:
        return self.column("cache_kind").tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def cache_source_rid(self) -> list[str | None]:
        got = self.column("cache_source_rid")
        return got.to_pylist() if isinstance(got, pa.Array) else got.tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def cache_similarity(self) -> list[float | None]:
        return optional_objects(self.column("cache_similarity")).tolist()  # type: ignore[no-any-return]

    @functools.cached_property
    def cache(self) -> list[Outcome | None]:  # type: ignore[override]
        """The outcomes as objects, their sources the composer's rows (made now if not yet)."""
        out, d, rows = self._out, self._inp.decoding, self._c.all_rows
        cache: list[Outcome | None] = [None] * len(out.cache_kind)
        for i in np.flatnonzero(out.cache_kind).tolist():
            k = out.cache_kind[i]
            if k == _BYPASS:
                cache[i] = Outcome("bypass", d.bypass[1][d.bypass[0][i]])
            elif k == _HIT:
                cache[i] = Outcome("hit", None, rows[int(out.cache_src[i])])
            elif k == _SEMHIT:
                cache[i] = Outcome("semantic-hit", None, rows[int(out.cache_src[i])], float(self._so.sim[i]))
            else:
                cache[i] = Outcome("miss", self._miss_reason(i), None, self.cache_similarity[i])
        return cache

    def _miss_reason(self, i: int) -> str | None:
        """``Found.reason`` of a miss: no-cache, the semantic verdict, or None (no semantic cache)."""
        if not self._inp.decoding.read[i]:
            return NO_CACHE
        code = int(self._so.reason[i])
        if not code:
            return None
        why = ("empty", "below threshold")[code - 1] if code < 3 else f"rejected: {self._why[code - 3]}"
        return f"semantic: {why}"


def _spread(values: list[Any], code: np.ndarray) -> np.ndarray:
    """``values[code[k]]`` for every ``k``, as an object array."""
    table = np.empty(len(values), object)
    table[:] = values
    return table[code]  # type: ignore[no-any-return]
