"""The limits, cache and cost stages' columns of a composed replay, from the fold's result and the
window's columns — no Python object per request (the cache summary's one rule is
:func:`.cache_stage.summary`, over the same arrays).

:mod:`.stages` turns a :class:`.fold.Folded` into ``.decisions`` columns and summary figures.
Read through the per-row objects (``Composer.rows``: one cache ``Row`` per request;
``Folded.cache``: one ``Outcome`` per request) that costs more than the compiled fold itself
(15 of ~45 CPU s of a 1M-row replay). These functions compute the same columns and figures from
:meth:`.fold.Folded.column` (arrays; the compiled fold's are its own, never lists) and the
window's coded columns: object arrays where a column holds strings or None, and ``differs`` as
a bool array. tests/replay/test_fold_columns.py holds them equal to the per-row forms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..log.record import CHECK_ENDPOINT
from .columns import Coded, numbers, strings
from .fates import ADMISSION, CACHE_KIND, fold_codes, logged_codes
from .window import Window, as_window

if TYPE_CHECKING:
    from .fold import Folded


def objects(window: Window, name: str) -> np.ndarray:
    """A string column as an object array (None for NULL)."""
    codes, values = window.codes(name)
    table = np.empty(len(values) + 1, object)
    table[: len(values)] = values
    return table[codes]  # type: ignore[no-any-return]


def coded(window: Window, name: str) -> Coded:
    """A logged string column as the frame takes it: the window's codes, no pointer per row."""
    codes, values = window.codes(name)
    return strings(values, codes)


def checks(window: Any) -> np.ndarray:
    """True for each row that is the gateway's check of a sampled semantic hit, not a client
    request (``endpoint = 'cache.check'``: :data:`llmgw_kernel.log.record.CHECK_ENDPOINT`)."""
    if isinstance(window, Window):
        codes, values = window.codes("endpoint")
        window.release(["endpoint"])  # its codes stay: ~20 MB of Arrow strings less at 1M rows
        table = np.array([v == CHECK_ENDPOINT for v in values] + [False], np.bool_)
        return table[codes]  # type: ignore[no-any-return]
    endpoints = window.get("endpoint")
    if endpoints is None:  # a window given as a few columns, without the endpoint: client requests
        return np.zeros(len(window["request_id"]), np.bool_)
    return np.array([e == CHECK_ENDPOINT for e in endpoints], np.bool_)


def limits_columns(window: Any, folded: Folded) -> tuple[dict[str, Any], np.ndarray]:
    """``logged_admission``, ``replay_admission(_reason, _limit)``; differs where the replayed
    admission is not the logged one (admitted with or without a limit: the same decision)."""
    w = as_window(window)
    ok = ADMISSION.index("ok")  # by codes (:mod:`.fates`): no string compared per row
    logged, replayed = logged_codes(w, "admission", ADMISSION), fold_codes(folded, "admission")
    differs = np.where(logged == 0, ok, logged) != np.where(replayed == 0, ok, replayed)  # not limited: admitted
    cols = {
        "logged_admission": coded(w, "admission"),
        "replay_admission": folded.column("admission"),
        "replay_admission_reason": folded.column("admission_reason"),
        "replay_admission_limit": folded.column("admission_limit"),
    }
    return cols, differs


def cache_columns(window: Any, folded: Folded) -> tuple[dict[str, Any], np.ndarray]:
    """``logged_cache``, ``replay_cache(_source, _similarity)``; differs where the replayed outcome
    is not the logged one, or a hit was served another request's answer."""
    w = as_window(window)
    logged, kinds = logged_codes(w, "cache", CACHE_KIND), fold_codes(folded, "cache_kind")
    sources = folded.column("cache_source_rid")
    hit = (kinds == CACHE_KIND.index("hit")) | (kinds == CACHE_KIND.index("semantic-hit"))
    differs = (logged != kinds) | (hit & _other_source(w, sources))
    cols = {
        "logged_cache": coded(w, "cache"),
        "replay_cache": folded.column("cache_kind"),
        "replay_cache_source": sources,
        "replay_cache_similarity": folded.column("cache_similarity"),
    }
    return cols, differs


def _other_source(window: Window, sources: Any) -> np.ndarray:
    """True where a replayed cache source (Arrow strings, or an object array of str | None) is
    not the logged one (NULL against a value differs, NULL against NULL does not) — Arrow
    against Arrow, row by row, with no Python string per row (the logged sources are nearly all
    distinct: coding them would make one each)."""
    logged = window.arrow("cache_source")
    logged = logged.combine_chunks() if isinstance(logged, pa.ChunkedArray) else logged
    got = pa.array(sources, pa.string()) if isinstance(sources, np.ndarray) else sources
    got = got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got
    if pa.types.is_null(logged.type):  # a log that predates the column: every source is NULL
        return pc.is_valid(got).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
    got = got.cast(logged.type)
    same = pc.fill_null(pc.equal(got, logged), False)
    both_null = pc.and_(pc.is_null(got), pc.is_null(logged))
    return ~pc.or_(same, both_null).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def cost_columns(window: Any, folded: Folded) -> dict[str, Any]:
    """``logged_cost_usd``, ``replay_cost_usd``, ``replay_saved_usd``, ``replay_served_by``."""
    w = as_window(window)
    return {
        "logged_cost_usd": numbers(w.numpy("cost_usd"), w.valid("cost_usd")),
        "replay_cost_usd": folded.column("cost"),
        "replay_saved_usd": folded.column("saved"),
        "replay_served_by": folded.column("served_by"),
    }
