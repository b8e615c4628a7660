"""The semantic cache inside the compiled fold (:mod:`.fold_kernel`): the live
:class:`~llmgw_kernel.cache.semantic.SemanticStore` and :func:`~llmgw_kernel.decisions.cache.choose`
over integer-coded rows, equal to them bit for bit.

Each (route, model) store keeps its entries in groups, one per (namespace, context), exactly as
the live ``_Group`` lays them out: slots in insertion order, a removed entry's slot dead until
the group compacts (``live * 2 < n`` and ``n > 64``), the group dropped when its last entry
goes. A group's slots are a block of a pool that holds each slot's vector (copied when a lookup
first reads it, moved with its slot), contiguous as ``_Group.vecs``; a grown or emptied group's
block is reused by the next block of its size. A lookup scores *every* slot of its group in place
(``vecs[:n] @ q``) with the same BLAS call numpy makes (``cblas_sgemv`` of numpy's own OpenBLAS,
called through a function pointer): the bits of a similarity depend on the row's position in
that product, so the layout is mirrored, not just the set of entries. Then the
:data:`~llmgw_kernel.decisions.cache.CANDIDATES` most similar visible entries (ties: older slot
first, as the stable argsort) are walked as ``choose`` walks them; verification
(:func:`~llmgw_kernel.decisions.cache.verify`, Python) is asked once per
distinct pair of logged feature texts, from the kernel (``objmode``), and remembered.

What the live store does that the kernel does not — an hnswlib index for a group above
:data:`~llmgw_kernel.cache.semantic.EXACT_MAX` entries — makes the kernel stop with
:data:`DECLINED`; the Python fold then runs. So does a semantic setting the kernel does not
implement (:func:`supported`).
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from ..cache.semantic import EXACT_MAX
from ..decisions.cache import CANDIDATES
from .jit import jit, njit

try:
    from numba import objmode, types
    from numba.core.errors import NumbaExperimentalFeatureWarning as ExperimentalWarning
    from numba.typed import Dict
except ImportError:  # the [fast] extra is not installed: nothing is compiled
    objmode = types = Dict = None  # type: ignore[assignment,misc]
    ExperimentalWarning = Warning  # type: ignore[assignment,misc]

#: the kernel stopped: a group outgrew exact search (live: hnswlib); the Python fold decides
DECLINED = 2
#: the kernel stopped: its slot pool is full (the caller retries with a larger one)
POOL_FULL = 3

#: the semantic settings the kernel implements; any other field not at its default declines
IMPLEMENTED = frozenset({"threshold", "ttl_s", "max_entries", "verify", "model"})

#: per row (window rows, then warm rows): whether it takes part in a semantic cache, its store
#: (route, model), group (store, namespace, context), vector (matrix, row), features (code, -1:
#: none) and its settings; then the state: per store the FIFO of entries (by row), per group
#: its block of slots in the pool, the pool (entry row, stored at, alive, vector, whether the
#: vector is copied yet), the pool's top and its free blocks by size, scratch for a lookup
Sem = namedtuple(
    "Sem",
    "on store group mat vi feat ttl thr verify max_e "
    "st_count st_head st_tail e_next g_off g_cap g_n g_live p_row p_stored p_alive p_vec p_has p_top f_head sims "
    "flag r_in nb_ptr nb_j nb_sim nb_ok nb_delta nb_tally",
)
#: a threshold sweep's neighbour lists (:func:`searching`): per querying row (CSR over window rows,
#: then warm rows) the rows of its group visible at its arrival with similarity >= the sweep's
#: lowest threshold minus ``delta``, best first; their similarity (one product of their own, not
#: the store's: equal to the store's within ``delta``) and whether verification lets each answer;
#: ``tally``: the lookups the lists decided and those the store scored (added to by every fold)
Lists = namedtuple("Lists", "ptr j sim ok delta tally")
_NO_LISTS = Lists(
    np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.bool_), 0.0, np.zeros(2, np.int64)
)
_LISTS: ContextVar[Lists] = ContextVar("llmgw_semantic_lists", default=_NO_LISTS)
_UNSURE = -2  # a lookup the lists cannot decide for certain: the store decides it
#: what each lookup found: similarity of the best candidate (NaN: none), reason code
#: (0: none, 1: empty, 2: below threshold, 3 + k: rejected by reason k)
SemOut = namedtuple("SemOut", "sim reason")
_EMPTY, _BELOW, _REJECTED = 1, 2, 3
_BLOCK = 8  # a new group's slots (``_Group`` starts with 8)
_SIZES = 16  # block sizes 8 * 2**k: a group holds at most 2 * EXACT_MAX + 65 slots before it declines


def supported(settings: list[Any]) -> bool:
    """Whether the kernel folds every cache in ``settings`` (a route's ``CacheSettings`` or None):
    each semantic field it does not implement is at its default, so a setting added later (e.g.
    a learned per-entry threshold) makes the Python fold decide, never a silent mis-replay."""
    for s in settings:
        sem = s.semantic if s is not None else None
        if sem is None:
            continue
        for name, field in type(sem).model_fields.items():
            if name not in IMPLEMENTED and getattr(sem, name) != field.get_default(call_default_factory=True):
                return False
    return True


# -- numpy's own sgemv, callable from the kernel --------------------------------------------------

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_SGEMV_ARGS = [
    ctypes.c_int,
    ctypes.c_int,
    _I64,
    _I64,
    ctypes.c_float,
    _PTR,
    _I64,
    _PTR,
    _I64,
    ctypes.c_float,
    _PTR,
    _I64,
]
_COL_MAJOR, _TRANS = 102, 112  # as numpy's matmul calls it for a C-contiguous matrix times a vector


_SDOT_ARGS = [_I64, _PTR, _I64, _PTR, _I64]


def _numpy_blas() -> tuple[Any, Any] | None:
    """``cblas_sgemv`` and ``cblas_sdot`` of the OpenBLAS numpy links (what ``matrix @ vector``
    calls: the dot product for a matrix of one row), or None when they are not found (then the
    kernel declines semantic caches)."""
    here = os.path.dirname(np.__file__)
    for path in sorted(glob.glob(os.path.join(here, "..", "numpy.libs", "libscipy_openblas*.so*"))):
        lib = ctypes.CDLL(path)
        suffix = "64_" if "64" in os.path.basename(path) else ""
        gemv, dot = (getattr(lib, f"scipy_cblas_{f}{suffix}", None) for f in ("sgemv", "sdot"))
        if gemv is not None and dot is not None:
            gemv.restype, gemv.argtypes = None, _SGEMV_ARGS
            dot.restype, dot.argtypes = ctypes.c_float, _SDOT_ARGS
            return gemv, dot
    return None


def _signatures() -> tuple[Any, Any]:
    u, i64, f32 = types.uint64, types.int64, types.float32
    return types.void(types.int32, types.int32, i64, i64, f32, u, i64, u, i64, f32, u, i64), f32(i64, u, i64, u, i64)


if types is not None:

    class Blas(types.WrapperAddressProtocol):  # type: ignore[misc,name-defined]
        """A BLAS function of numpy's OpenBLAS as a first-class function of the kernel (an
        argument, so the kernel stays cacheable: no address is compiled in)."""

        def __init__(self, fn: Any, sig: Any) -> None:
            self.fn, self.sig = fn, sig

        def __wrapper_address__(self) -> int:
            return ctypes.cast(self.fn, ctypes.c_void_p).value  # type: ignore[return-value]

        def signature(self) -> Any:
            return self.sig


def blas() -> tuple[Any, Any] | None:
    """(sgemv, sdot) for the kernel (None: not available here)."""
    if types is None:
        return None
    import numba.experimental.function_type  # noqa: F401  (registers the typing of Blas)

    found = _numpy_blas()
    if found is None:
        return None
    gemv_sig, dot_sig = _signatures()
    return Blas(found[0], gemv_sig), Blas(found[1], dot_sig)


def no_blas() -> tuple[Any, Any]:
    """Functions of the types of :func:`blas` that do nothing: the kernel's arguments when no row
    takes part in a semantic cache (it then never calls them)."""
    from numba import cfunc

    gemv_sig, dot_sig = _signatures()

    @cfunc(gemv_sig, cache=True)
    def gemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy):  # type: ignore[no-untyped-def]
        pass

    @cfunc(dot_sig, cache=True)
    def dot(n, x, incx, y, incy):  # type: ignore[no-untyped-def]
        return np.float32(0.0)

    return gemv, dot


# -- verification, asked from the kernel ----------------------------------------------------------

_VERIFIERS: dict[int, Callable[[int, int], int]] = {}
_TOKENS = itertools.count(1)


def register(verdict: Callable[[int, int], int]) -> int:
    """A token for ``verdict`` (query features code, candidate features code -> 0: passes, 1 + k:
    rejected by reason k), valid until :func:`release`."""
    token = next(_TOKENS)
    _VERIFIERS[token] = verdict
    return token


def release(token: int) -> list[str]:
    """Forget ``token``; returns the reasons its verdicts named (``verdict.reasons``, if any)."""
    fn = _VERIFIERS.pop(token, None)
    return list(getattr(fn, "reasons", []))


def _verdict(token: int, qf: int, cf: int) -> int:
    return _VERIFIERS[token](qf, cf)


def memo() -> Any:
    """The kernel's memo of verdicts by pair of features codes (made in Python: a kernel makes
    its own with :func:`new_memo`, compiled into it)."""
    return Dict.empty(types.int64, types.int64)


def _new_memo():  # type: ignore[no-untyped-def]
    """:func:`memo` made inside a kernel."""
    return Dict.empty(key_type=types.int64, value_type=types.int64)


new_memo = jit(_new_memo) if njit is not None else _new_memo


def _verified(qf, cf, n_feat, token, seen):  # type: ignore[no-untyped-def]
    key = qf * n_feat + cf
    if key in seen:
        return seen[key]
    got = 0
    with objmode(got="int64"):
        got = _verdict(token, qf, cf)
    seen[key] = got
    return got


if njit is not None:  # not inlined (a with-block cannot be), without nogil (it calls Python)
    _verified = njit(cache=True)(_verified)


# -- the store ------------------------------------------------------------------------------------


@jit
def _size_class(size):  # type: ignore[no-untyped-def]
    k = 0
    while (_BLOCK << k) < size:
        k += 1
    return k


@jit
def _alloc(size, s):  # type: ignore[no-untyped-def]
    """A block of ``size`` slots: a freed one of that size, else from the top of the pool (-1:
    the pool is full). A free block holds the next free block of its size in its first ``p_row``."""
    k = _size_class(size)
    at = s.f_head[k]
    if at >= 0:
        s.f_head[k] = s.p_row[at]
        return at
    at = s.p_top[0]
    if at + size > len(s.p_row):
        s.flag[0] = POOL_FULL
        return -1
    s.p_top[0] = at + size
    return at


@jit
def _free(off, size, s):  # type: ignore[no-untyped-def]
    """Give a block back (a grown group's old block, an emptied group's): the next block of its
    size reuses it, so the pool holds what the groups hold, not every block ever made."""
    k = _size_class(size)
    s.p_row[off] = s.f_head[k]
    s.f_head[k] = off


@jit
def _compact(g, s):  # type: ignore[no-untyped-def]
    off, k = s.g_off[g], 0
    for slot in range(off, off + s.g_n[g]):
        if s.p_alive[slot]:
            s.p_row[off + k], s.p_stored[off + k], s.p_alive[off + k] = s.p_row[slot], s.p_stored[slot], True
            s.p_has[off + k] = s.p_has[slot]
            if s.p_has[slot] and slot != off + k:
                s.p_vec[off + k, :] = s.p_vec[slot, :]
            k += 1
    for slot in range(off + k, off + s.g_n[g]):
        s.p_alive[slot] = False
    s.g_n[g] = k


@jit
def _remove(row, s):  # type: ignore[no-untyped-def]
    """``SemanticStore._remove``: the entry's slot dies; the group compacts or goes."""
    g = s.group[row]
    off = s.g_off[g]
    s.r_in[row] = False
    for slot in range(off, off + s.g_n[g]):
        if s.p_row[slot] == row and s.p_alive[slot]:
            s.p_alive[slot] = False
            break
    s.g_live[g] -= 1
    if s.g_live[g] and s.g_live[g] * 2 < s.g_n[g] and s.g_n[g] > 64:
        _compact(g, s)
    if s.g_live[g] == 0:
        _free(s.g_off[g], s.g_cap[g], s)
        s.g_off[g], s.g_n[g], s.g_cap[g] = -1, 0, 0


@jit
def sem_add(row, stored, s):  # type: ignore[no-untyped-def]
    """``SemanticStore.add``: ``row``'s answer enters its group at ``stored``; the store's oldest
    entries go past its size bound. Sets ``s.flag`` when the kernel cannot go on."""
    g, st = s.group[row], s.store[row]
    if s.g_off[g] < 0:
        s.g_off[g] = _alloc(_BLOCK, s)
        if s.g_off[g] < 0:
            return
        s.g_cap[g], s.g_n[g], s.g_live[g] = _BLOCK, 0, 0
    if s.g_n[g] == s.g_cap[g]:
        off = _alloc(2 * s.g_cap[g], s)
        if off < 0:
            return
        old = s.g_off[g]
        for k in range(s.g_n[g]):
            s.p_row[off + k], s.p_stored[off + k], s.p_alive[off + k] = (
                s.p_row[old + k],
                s.p_stored[old + k],
                s.p_alive[old + k],
            )
            s.p_has[off + k] = s.p_has[old + k]
            if s.p_has[old + k]:
                s.p_vec[off + k, :] = s.p_vec[old + k, :]
        _free(old, s.g_cap[g], s)
        s.g_off[g], s.g_cap[g] = off, 2 * s.g_cap[g]
    slot = s.g_off[g] + s.g_n[g]
    s.p_row[slot], s.p_stored[slot], s.p_alive[slot], s.p_has[slot] = row, stored, True, False  # vector: at a lookup
    s.g_n[g] += 1
    s.g_live[g] += 1
    s.r_in[row] = True
    if s.g_live[g] > EXACT_MAX:  # live: an hnswlib index from here on
        s.flag[0] = DECLINED
    s.e_next[row] = -1
    if s.st_tail[st] >= 0:
        s.e_next[s.st_tail[st]] = row
    else:
        s.st_head[st] = row
    s.st_tail[st] = row
    s.st_count[st] += 1
    while s.st_count[st] > s.max_e[row]:  # FIFO eviction per store
        old = s.st_head[st]
        s.st_head[st] = s.e_next[old]
        if s.st_head[st] < 0:
            s.st_tail[st] = -1
        s.st_count[st] -= 1
        _remove(old, s)


@jit
def _listed(i, s):  # type: ignore[no-untyped-def]
    """``choose`` over ``i``'s neighbour list, its entries still in the store (``r_in``; the list
    holds only rows visible at ``i``'s arrival), best first: the row that serves ``i``, -1, or
    :data:`_UNSURE` when the store's own similarities (within ``delta`` of the list's) could
    decide otherwise — a walked entry within ``delta`` of the threshold, or two entries the walk
    orders (each walked one and the next) less than ``2 * delta`` apart."""
    thr, d = s.thr[i], s.nb_delta[0]
    last, rejected, found = np.inf, 0, -3
    for p in range(s.nb_ptr[i], s.nb_ptr[i + 1]):
        j = s.nb_j[p]
        if not s.r_in[j]:
            continue
        sim = s.nb_sim[p]
        if last - sim <= 2 * d:
            return _UNSURE  # the store may order the two the other way
        if found != -3:
            return found  # decided, and the next entry is surely after it
        if abs(sim - thr) <= d:
            return _UNSURE
        if sim < thr:
            return -1  # the walk stops: every later entry is lower still
        last = sim
        if s.nb_ok[p]:
            found = j
        else:
            rejected += 1
            if rejected == CANDIDATES:
                found = -1
    return -1 if found == -3 else found


@jit
def sem_lookup(i, ts, kx, mats, s, so):  # type: ignore[no-untyped-def]
    """``Caches.lookup_semantic`` for row ``i`` (it reads the cache and takes part in a semantic
    cache): the row whose answer serves it (-1: a miss; ``so`` says why and how similar).
    ``kx``: (sgemv, sdot, verification token, verdict memo, number of features codes)."""
    g = s.group[i]
    so.sim[i], so.reason[i] = np.nan, _EMPTY
    if s.g_off[g] < 0:
        return -1
    if len(s.nb_ptr) > 1:  # a sweep's neighbour lists: the store scores only what they cannot decide
        j = _listed(i, s)
        if j != _UNSURE:
            s.nb_tally[0] += 1
            return j
        s.nb_tally[1] += 1
    off, n, ttl = s.g_off[g], s.g_n[g], s.ttl[i]
    any_valid = False
    for slot in range(off, off + n):
        if s.p_alive[slot] and s.p_stored[slot] < ts and s.p_stored[slot] + ttl > ts:
            any_valid = True
            break
    if not any_valid:
        return -1
    sims = s.sims
    for slot in range(off, off + n):  # each entry's vector enters its slot once (the pool keeps it)
        if not s.p_has[slot]:
            j = s.p_row[slot]
            s.p_vec[slot, :] = mats[s.mat[j]][s.vi[j]]
            s.p_has[slot] = True
    buf = s.p_vec[off : off + n]  # the group's vectors, contiguous in slot order: the live product's operand
    q = mats[s.mat[i]][s.vi[i]]
    dim = buf.shape[1]
    if n == 1:  # numpy's matmul: the dot product for one row
        sims[0] = kx[1](np.int64(dim), buf.ctypes.data, np.int64(1), q.ctypes.data, np.int64(1))
    else:
        kx[0](np.int32(_COL_MAJOR), np.int32(_TRANS), np.int64(dim), np.int64(n), np.float32(1.0), buf.ctypes.data,
              np.int64(dim), q.ctypes.data, np.int64(1), np.float32(0.0), sims.ctypes.data, np.int64(1))  # fmt: skip
    top = np.full(CANDIDATES, -1, np.int64)  # the best visible slots, best first (ties: older slot)
    for k in range(n):
        slot = off + k
        if not (s.p_alive[slot] and s.p_stored[slot] < ts and s.p_stored[slot] + ttl > ts):
            continue
        for t in range(CANDIDATES):
            if top[t] < 0 or sims[k] > sims[top[t]]:
                for u in range(CANDIDATES - 1, t, -1):
                    top[u] = top[u - 1]
                top[t] = k
                break
    so.sim[i] = np.float64(sims[top[0]])
    rejected = 0
    for t in range(CANDIDATES):  # decisions.cache.choose
        if top[t] < 0:
            break
        sim = np.float64(sims[top[t]])
        if sim < s.thr[i]:
            break
        j = s.p_row[off + top[t]]
        if s.verify[i] and s.feat[i] >= 0 and s.feat[j] >= 0:
            why = _verified(s.feat[i], s.feat[j], kx[4], kx[2], kx[3])
            if why:
                if not rejected:
                    rejected = why
                continue
        so.sim[i], so.reason[i] = sim, 0
        return j
    so.reason[i] = _REJECTED + rejected - 1 if rejected else _BELOW
    return -1


@contextmanager
def searching(lists: Lists) -> Iterator[None]:
    """Within the block, every semantic cache :func:`state` makes searches ``lists`` first (a
    threshold sweep: the neighbours found once for every threshold): a lookup they decide for
    certain costs no product; the rest are scored by the store as the live store scores them.
    A context, so the compiled fold's signature stays as it is."""
    token = _LISTS.set(lists)
    try:
        yield
    finally:
        _LISTS.reset(token)


def dot_error_bound(dim: int, max_norm: float) -> float:
    """How far two float32 evaluations of one dot product of ``dim`` terms (vectors of norm at
    most ``max_norm``) can differ, in any order of summation, with or without fused
    multiply-adds: each is within ``gamma_dim * sum |x_k y_k|`` of the exact value (Higham,
    *Accuracy and Stability of Numerical Algorithms*, 3.1), ``gamma_n = n u / (1 - n u)``,
    ``u = 2**-24``, and ``sum |x_k y_k| <= |x| |y|``."""
    nu = max(dim, 1) * 2.0**-24
    return 2.0 * nu / (1.0 - nu) * max_norm * max_norm * (1.0 + 2.0**-20)  # (the bound's own rounding)


def state(facts: dict[str, np.ndarray], m: int, n_stores: int, n_groups: int, dim: int, pool: int) -> Any:
    """An empty semantic cache over the per-row ``facts`` (``on store group mat vi feat ttl thr
    verify max_e``), with ``pool`` slots, searching the lists of the enclosing :func:`searching`
    if any. The slots' vectors (``pool`` x ``dim`` float32) are zeroed memory the system maps
    when first written: only the slots in use take memory (freed blocks are reused), not the
    pool's size. Without a semantic row, the per-row lists are empty (never read: 8 MB less per
    million rows at the fold's peak)."""
    i64 = np.int64
    lists = _LISTS.get()
    m = m if facts["on"].any() else 0
    return Sem._make([
        *(facts[k] for k in Sem._fields[:10]),
        np.zeros(max(n_stores, 1), i64), np.full(max(n_stores, 1), -1, i64), np.full(max(n_stores, 1), -1, i64),
        np.full(m, -1, i64), np.full(max(n_groups, 1), -1, i64), np.zeros(max(n_groups, 1), i64),
        np.zeros(max(n_groups, 1), i64), np.zeros(max(n_groups, 1), i64), np.zeros(pool, i64), np.zeros(pool),
        np.zeros(pool, np.bool_), np.zeros((pool, max(dim, 1)), np.float32), np.zeros(pool, np.bool_),
        np.zeros(1, i64), np.full(_SIZES, -1, i64), np.zeros(2 * EXACT_MAX + 66, np.float32), np.zeros(1, i64),
        np.zeros(m, np.bool_), np.asarray(lists.ptr, i64), np.asarray(lists.j, i64), np.asarray(lists.sim, np.float64),
        np.asarray(lists.ok, np.bool_), np.array([lists.delta]), lists.tally,
    ])  # fmt: skip


__all__ = ["DECLINED", "POOL_FULL", "Lists", "Sem", "SemOut", "blas", "dot_error_bound", "memo", "new_memo", "njit",
           "no_blas", "register", "release", "searching", "sem_add", "sem_lookup", "state", "supported"]  # fmt: skip
