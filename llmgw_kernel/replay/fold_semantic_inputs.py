"""The semantic cache's arrays for the compiled fold (:mod:`.fold_semantic`), made from the
window's columns as :func:`.cache_stage.rows` and ``Caches`` read them per request:

- the vector of each row: its row in the window's (or the warm rows') float32 matrix; a row
  that logged none (a live exact hit) borrows the vector, features, model and context of the
  first earlier row with the same logged exact key that has one (warm rows first);
- whether it takes part in a semantic cache (``core.semantic_settings``: a semantic cache on its
  route, a vector of that cache's model, a context), its store (route, model) and group
  (store, namespace, context);
- its features as a code (parsed once per distinct logged text), and its route's settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache.core import semantic_model
from .cache_stage import features_of
from .fold_codes import Cols, factorize

if TYPE_CHECKING:
    from .fold import Composer

_NO_VECTORS = np.empty((0, 0), np.float32)


def _matrices(c: Composer, cols: Cols) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(window matrix, warm matrix, matrix of each row, its row in that matrix or -1)."""
    m, n = cols.m, cols.n
    vi, mat = np.full(m, -1, np.int64), np.zeros(m, np.int64)
    own, rows = cols.w.embeddings()
    vi[rows] = np.arange(len(rows))
    other = _NO_VECTORS
    if cols.warm is not None:
        other, wrows = cols.warm.embeddings()
        vi[n + wrows] = np.arange(len(wrows))
        mat[n + wrows] = 1
    dim = max(own.shape[1] if own.size else 0, other.shape[1] if other.size else 0)
    own = own if own.size else np.zeros((0, dim), np.float32)
    other = other if other.size else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(own), np.ascontiguousarray(other), mat, vi


def _borrowed(cols: Cols, vi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows that borrow a vector, the row each borrows from) — ``cache_stage.rows``: in the
    order warm rows, window rows, the first row of each logged key with a vector lends it to
    the later rows of that key without one."""
    m, n = cols.m, cols.n
    key, _ = cols.codes("cache_key", both=True)
    pos = np.concatenate([np.arange(m - n, m), np.arange(m - n)])  # place in that order
    lender = (key >= 0) & (vi >= 0)
    first = np.full(int(key.max(initial=-1)) + 2, m, np.int64)  # by key: first lender's place
    np.minimum.at(first, key[lender], pos[lender])
    by_place = np.empty(m, np.int64)
    by_place[pos] = np.arange(m)
    k = np.where(key >= 0, key, len(first) - 1)
    borrows = (key >= 0) & (vi < 0) & (first[k] < pos)
    rows = np.flatnonzero(borrows)
    return rows, by_place[first[k[rows]]]


def semantic_arrays(
    c: Composer, cols: Cols, has_s: np.ndarray, settings: list[Any], route_code: np.ndarray, ns_code: np.ndarray,
    a: dict[str, np.ndarray],
) -> None:  # fmt: skip
    """The ``s_*`` arrays of every row (window, then warm rows) into ``a``; the matrices as
    ``s_mat0``/``s_mat1`` and the parsed features as ``s_features`` (an object array)."""
    m = cols.m
    sems = [s.semantic if s is not None else None for s in settings] + [None]
    on_route = np.array([x is not None for x in sems], np.bool_)[route_code] & has_s
    a["s_on"] = np.zeros(m, np.bool_)
    a["s_features"] = np.empty(0, object)
    if not on_route.any():
        for k in ("s_store", "s_group", "s_mat", "s_vi", "s_feat", "s_max_e"):
            a[k] = np.zeros(m, np.int64)
        a["s_ttl"], a["s_thr"], a["s_verify"] = np.zeros(m), np.zeros(m), np.zeros(m, np.bool_)
        a["s_mat0"] = a["s_mat1"] = np.zeros((0, 0), np.float32)
        a["n_sem"] = np.array([0, 0], np.int64)
        return
    own, other, mat, vi = _matrices(c, cols)
    feat_code, feat_values = cols.codes("cache_features", True)
    model_code, models = cols.codes("embedding_model", True)
    feat, model = feat_code.astype(np.int64), model_code.astype(np.int64)  # copies: borrowing writes them
    ctx = cols.codes("cache_context", True)[0].astype(np.int64)
    rows, src = _borrowed(cols, vi)
    for arr in (vi, mat, feat, model, ctx):
        arr[rows] = arr[src]
    wanted = {name: k for k, name in enumerate(models)}
    route_model = np.array([wanted.get(semantic_model(x), -2) if x is not None else -2 for x in sems], np.int64)
    on = on_route & (vi >= 0) & (ctx >= 0) & (model == route_model[route_code])
    parsed = [features_of(v) for v in feat_values]
    table = np.array([k if f is not None else -1 for k, f in enumerate(parsed)] + [-1], np.int64)
    store, _ = factorize(np.where(on, route_code, -1), np.where(on, model, -1))
    group, _ = factorize(store, np.where(on, ns_code, -1), np.where(on, ctx, -1))
    r = np.where(on, route_code, len(sems) - 1)
    a["s_on"], a["s_store"], a["s_group"], a["s_mat"], a["s_vi"] = on, store, group, mat, vi
    a["s_feat"] = table[feat]
    a["s_ttl"] = np.array([x.ttl_s if x is not None else 0.0 for x in sems])[r]
    a["s_thr"] = np.array([x.threshold if x is not None else 0.0 for x in sems])[r]
    a["s_verify"] = np.array([x.verify if x is not None else False for x in sems], np.bool_)[r]
    a["s_max_e"] = np.array([x.max_entries if x is not None else 0 for x in sems], np.int64)[r]
    a["s_mat0"], a["s_mat1"] = own, other
    a["s_features"] = np.empty(len(parsed), object)
    for code, f in enumerate(parsed):
        a["s_features"][code] = f
    a["n_sem"] = np.array([int(store.max(initial=0)) + 1, int(group.max(initial=0)) + 1], np.int64)
