"""The compiled fold's semantic store (llmgw_kernel/replay/fold_semantic.py): each group's vectors
kept contiguous in its slots, as the live ``_Group`` keeps them, and the blocks of grown or emptied
groups reused — with the verdicts and similarity bits of the live ``SemanticStore`` + ``choose``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from llmgw_kernel.cache.exact import Entry
from llmgw_kernel.cache.semantic import SemanticStore
from llmgw_kernel.decisions.cache import CANDIDATES, choose
from llmgw_kernel.replay import fold_semantic

pytest.importorskip("numba")


def _facts(m: int, group: np.ndarray, vi: np.ndarray, size: int) -> dict[str, np.ndarray]:
    return {"on": np.ones(m, np.bool_), "store": np.zeros(m, np.int64), "group": group,
            "mat": np.zeros(m, np.int64), "vi": vi, "feat": np.full(m, -1), "ttl": np.full(m, 30.0),
            "thr": np.full(m, 0.3), "verify": np.zeros(m, np.bool_), "max_e": np.full(m, size)}  # fmt: skip


def assert_store_is_live(rng: np.random.Generator, vecs: np.ndarray, group: np.ndarray, groups: int, size: int,
                         p_add: float) -> None:  # fmt: skip
    """Rows 0..m-1 of ``group`` are adds (each with probability ``p_add``), rows m+i lookups of
    vector ``7i mod m`` near the add's time: each lookup's verdict and similarity bits in the
    kernel's store equal ``SemanticStore`` + ``choose``'s."""
    m, dim = vecs.shape
    vi = np.concatenate([np.arange(m), (np.arange(m) * 7) % m])
    sm = fold_semantic.state(_facts(2 * m, group, vi, size), 2 * m, 1, groups, dim, 64 * m)
    so = fold_semantic.SemOut(np.full(2 * m, np.nan), np.zeros(2 * m, np.int64))
    kx = (*fold_semantic.blas(), 0, fold_semantic.memo(), 1)
    live = SemanticStore(dim)
    for i in range(m):
        at = i * 0.1
        if rng.random() < p_add:
            live.add("ns", str(group[i]), vecs[i], Entry(str(i), at, b"x", None, None), None, size)
            fold_semantic.sem_add(i, at, sm)
        ts = at + float(rng.uniform(-2, 2))
        verdict = choose(0.3, False, None, live.search("ns", str(group[i]), vecs[(i * 7) % m], ts, 30.0, CANDIDATES))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fold_semantic.ExperimentalWarning)
            j = fold_semantic.sem_lookup(m + i, ts, kx, (vecs, vecs), sm, so)
        want = -1 if verdict.entry is None else int(live.get(verdict.entry).entry.request_id)
        assert j == want, i
        sim = so.sim[m + i]
        assert (verdict.similarity is None and np.isnan(sim)) or verdict.similarity == sim, i
    assert sm.flag[0] == 0


@pytest.mark.parametrize("seed", range(3))
def test_many_short_lived_groups_decide_as_the_live_store(seed):
    """Hundreds of groups, a small store: groups grow, compact, empty and are dropped, their blocks
    reused by others (a reused block's slots hold another group's vectors until overwritten).
    Every lookup's verdict and similarity bits equal ``SemanticStore`` + ``choose``."""
    rng = np.random.default_rng(seed)
    m, dim, groups, size = 3000, 16, 300, int(rng.integers(20, 90))
    vecs = rng.standard_normal((m, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    # a few busy groups (they grow past 64 slots and compact) among many rare ones
    group = np.where(rng.random(m) < 0.4, rng.integers(0, 3, m), rng.integers(3, groups, m))
    group = np.tile(group, 2)  # rows m + i: the lookups, of another vector
    assert_store_is_live(rng, vecs, group, groups, size, p_add=0.7)


def test_the_pool_holds_what_the_groups_hold():
    """A store of 16 entries over 2,000 groups of one entry each: every add evicts the oldest entry
    and drops its group, whose block the next group takes. The pool's top stays near what 16
    groups hold (it grew by a block per group ever made before blocks were reused)."""
    m, dim, size = 2000, 4, 16
    sm = fold_semantic.state(_facts(m, np.arange(m), np.arange(m) % dim, size), m, 1, m, dim, 8 * m)
    for i in range(m):
        fold_semantic.sem_add(i, float(i), sm)
    assert sm.flag[0] == 0
    assert int(sm.p_top[0]) <= 8 * (size + 1)
    assert int(np.count_nonzero(sm.g_off >= 0)) == size


def _listed(sims: list[float], ok: list[bool], thr: float, delta: float, gone: tuple[int, ...] = ()) -> int:
    """What ``fold_semantic._listed`` decides for a query (row 0) whose neighbour list is rows
    1..k with ``sims`` (best first) and verdicts ``ok``; rows in ``gone`` are not in the store."""
    k = len(sims)
    m = k + 1
    ptr = np.full(m + 1, k, np.int64)
    ptr[0] = 0
    lists = fold_semantic.Lists(ptr, np.arange(1, m, dtype=np.int64), np.array(sims), np.array(ok, np.bool_), delta,
                                np.zeros(2, np.int64))  # fmt: skip
    facts = _facts(m, np.zeros(m, np.int64), np.arange(m), 8)
    facts["thr"] = np.full(m, thr)
    with fold_semantic.searching(lists):
        sm = fold_semantic.state(facts, m, 1, 1, 4, 8 * m)
    sm.r_in[1:] = True
    for row in gone:
        sm.r_in[row] = False
    return int(fold_semantic._listed(0, sm))


def test_neighbour_lists_decide_a_lookup_only_when_the_stores_similarities_cannot_change_it():
    """A list's similarities are within ``delta`` of the store's: the lists decide only when every
    walked entry is more than ``delta`` from the threshold and each walked entry is more than
    ``2 * delta`` above the next; otherwise the store scores the lookup (``_UNSURE``)."""
    unsure = fold_semantic._UNSURE
    assert _listed([0.95, 0.85], [True, True], 0.9, 1e-4) == 1
    assert _listed([0.95, 0.9499], [True, True], 0.9, 1e-4) == unsure  # the store may put row 2 first
    assert _listed([0.95, 0.9499], [True, True], 0.9, 1e-5) == 1
    assert _listed([0.95, 0.9499], [True, True], 0.9, 1e-4, gone=(2,)) == 1  # row 2 is not cached
    assert _listed([0.90005], [True], 0.9, 1e-4) == unsure  # the store's may be below the threshold
    assert _listed([0.90005], [True], 0.9, 1e-5) == 1
    assert _listed([0.89995], [True], 0.9, 1e-5) == -1
    assert _listed([0.95, 0.85], [False, True], 0.9, 1e-4) == -1  # the walk stops below the threshold
    assert _listed([0.99, 0.98, 0.97, 0.96], [False, False, False, True], 0.9, 1e-4) == -1  # CANDIDATES walked
    assert _listed([0.99, 0.98, 0.97, 0.96], [False, False, False, True], 0.9, 1e-4, gone=(1,)) == 4
    assert _listed([0.99, 0.98, 0.97, 0.97], [False, False, False, True], 0.9, 1e-4) == unsure  # which is third?
    assert _listed([], [], 0.9, 1e-4) == -1


def test_dot_error_bound_covers_two_orders_of_summation():
    """Two float32 evaluations of the same dot products in different orders differ by less than
    the bound (here: numpy's product over a matrix, and each row's sum in reverse order)."""
    rng = np.random.default_rng(5)
    dim = 384
    vecs = rng.standard_normal((2000, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    q = vecs[0]
    bound = fold_semantic.dot_error_bound(dim, float(np.linalg.norm(vecs, axis=1).max()))
    a = (vecs @ q).astype(np.float64)
    b = np.zeros(len(vecs), np.float32)
    for k in range(dim - 1, -1, -1):
        b = (b + vecs[:, k] * q[k]).astype(np.float32)
    assert 0 < np.abs(a - b).max() < bound < 1e-4
