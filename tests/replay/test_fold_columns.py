"""The stages' columns computed from the fold's arrays and the window's columns
(``replay/fold_columns.py``) equal the same columns computed the per-row way (one cache ``Row``
and one ``Outcome`` per request), for the compiled
fold's result and the Python fold's, under the live policy and candidates that refuse, evict,
hit where the live proxy missed and miss where it hit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from test_fold_kernel import composer, live, tight

from llmgw_kernel.decisions.limits import utc
from llmgw_kernel.replay import fold_columns
from llmgw_kernel.replay.cache_stage import HIT_KINDS
from llmgw_kernel.replay.columns import optional_objects, to_pandas
from llmgw_kernel.replay.fold_kernel import FoldedArrays, run_compiled
from llmgw_kernel.replay.limits_stage import summarize_limits

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cols") / "log"
    replay_scale.generate(d, 6000, seed=8, chunk=3000)
    return d


def _per_row(c: Any, f: Any) -> tuple[dict[str, list[Any]], list[bool], list[bool]]:
    """The columns and differs the per-row way (the reference)."""
    rs, outs, w = c.rows, f.cache, c.window
    kinds = [o.kind if o is not None else None for o in outs]
    sources = [o.source.rid if o is not None and o.source is not None else None for o in outs]
    cols = {
        "logged_admission": list(w["admission"]), "replay_admission": f.admission,
        "replay_admission_reason": f.admission_reason, "replay_admission_limit": f.admission_limit,
        "logged_cache": [r.logged for r in rs], "replay_cache": kinds, "replay_cache_source": sources,
        "replay_cache_similarity": [o.similarity if o is not None else None for o in outs],
        "logged_cost_usd": list(w["cost_usd"]), "replay_cost_usd": f.cost, "replay_saved_usd": f.saved,
        "replay_served_by": f.served_by,
    }  # fmt: skip
    limits = [(k or "ok") != (g or "ok") for k, g in zip(f.admission, w["admission"], strict=True)]
    cache = [(r.logged != k) or (k in HIT_KINDS and r.source != s) for r, k, s in zip(rs, kinds, sources, strict=True)]
    return cols, limits, cache


def _read(column: Any) -> list[Any]:
    """A stage column's values as Python objects (float columns' NaN: None), as the frame reads them."""
    if isinstance(column, np.ndarray) and column.dtype == np.float64:
        return optional_objects(column).tolist()  # type: ignore[no-any-return]
    return column.to_pylist() if hasattr(column, "to_pylist") else column.tolist()  # type: ignore[no-any-return]


def _doc(kind: str) -> dict[str, Any]:
    doc = tight() if kind != "live" else live()
    if kind == "evict":  # a small cache, and one on a route that had none: hits lost and new hits
        doc["cache"] = {"exact": {"ttl_s": 20.0, "max_entries": 60}}
        doc["routes"]["summarize"].pop("cache", None)
    return doc


@pytest.mark.parametrize("kind", ["live", "tight", "evict"])
@pytest.mark.parametrize("compiled", [True, False])
def test_columns_equal_the_per_row_forms(log, tmp_path, kind, compiled):
    c = composer(log, _doc(kind), tmp_path)
    f = run_compiled(c) if compiled else c.run(compiled=False)
    assert f is not None and isinstance(f, FoldedArrays) == compiled
    want, want_limits, want_cache = _per_row(c, f)
    got: dict[str, Any] = {}
    lim_cols, lim_diff = fold_columns.limits_columns(c.window, f)
    cache_cols, cache_diff = fold_columns.cache_columns(c.window, f)
    for part in (lim_cols, cache_cols, fold_columns.cost_columns(c.window, f)):
        got.update(part)
    assert set(got) == set(want)
    for name, values in want.items():
        have = _read(got[name])
        bad = [i for i, (a, b) in enumerate(zip(values, have, strict=True)) if a != b or type(a) is not type(b)]
        assert not bad, f"{name} at {bad[:3]}: {[values[i] for i in bad[:3]]} != {[have[i] for i in bad[:3]]}"
        # the frame's column has the dtype pandas gives the per-row list (float | None: float64)
        assert str(pd.Series(to_pandas(got[name])).dtype) == str(pd.Series(values).dtype), name
    if compiled:  # the compiled fold's numbers are float64 (8 bytes a row), not 1M Python floats
        for name in ("logged_cost_usd", "replay_cost_usd", "replay_saved_usd", "replay_cache_similarity"):
            col = got[name]  # (no value at all, e.g. no semantic cache: an object column of None, as pandas reads it)
            assert col.dtype == np.float64 or (col == None).all(), name  # noqa: E711
        assert isinstance(got["replay_cache_source"], pa.Array) or (got["replay_cache_source"] == None).all()  # noqa: E711
        assert got["replay_cost_usd"].dtype == np.float64
    assert lim_diff.tolist() == want_limits and cache_diff.tolist() == want_cache
    if kind == "evict":  # the candidate changes cache outcomes both ways
        logged = np.array(want["logged_cache"], object)
        replayed = np.array(want["replay_cache"], object)
        assert ((logged == "hit") & (replayed == "miss")).any() and ((logged != "hit") & (replayed == "hit")).any()


def _limits_per_row(window: Any, decisions: dict[str, Any]) -> dict[str, Any]:
    """``summarize_limits`` as it was written per row (the reference)."""
    from llmgw_kernel.replay.columns import epoch

    refused = [(i, k) for i, k in enumerate(decisions["replay_admission"]) if k not in (None, "ok")]
    prevented = 0.0
    cutoffs: dict[str, dict[str, Any]] = {}
    for i, kind in refused:
        if window["admission"][i] in (None, "ok"):
            prevented += window["cost_usd"][i] or 0.0
        limit = decisions["replay_admission_limit"][i] or kind
        c = cutoffs.setdefault(limit, {"limit": limit, "kind": kind, "first_refused_at": None, "refused": 0})
        c["refused"] += 1
        at = epoch(window["ts"][i])
        if c["first_refused_at"] is None or at < c["first_refused_at"]:
            c["first_refused_at"] = at
    return {
        "refused": len(refused), "prevented": round(prevented, 6), "cutoffs": sorted(
            ({**c, "first_refused_at": utc(c["first_refused_at"])} for c in cutoffs.values()),
            key=lambda c: c["first_refused_at"]),
        "newly_admitted": sum(1 for i, k in enumerate(decisions["replay_admission"])
                              if k == "ok" and window["admission"][i] not in (None, "ok")),
        "evaluated": sum(1 for k in decisions["replay_admission"] if k is not None),
    }  # fmt: skip


def test_the_limits_summary_by_column_is_the_per_row_one(log, tmp_path):
    c = composer(log, _doc("tight"), tmp_path)
    f = run_compiled(c)
    assert f is not None
    cols, _ = fold_columns.limits_columns(c.window, f)
    as_lists = {k: _read(v) for k, v in cols.items()}
    want = _limits_per_row(c.window, as_lists)
    assert want["refused"] > 500 and len(want["cutoffs"]) > 3 and want["newly_admitted"] > 0
    plain = {k: list(c.window[k]) for k in ("admission", "cost_usd", "ts")}  # a dict of lists, as tests pass
    for window, decisions in ((c.window, cols), (c.window, as_lists), (plain, as_lists)):
        got = summarize_limits(c.policy, window, decisions)["limits"]
        assert (got["refused"], got["spend_prevented_usd"], got["cutoffs"], got["newly_admitted"], got["evaluated"]) == (
            want["refused"], want["prevented"], want["cutoffs"], want["newly_admitted"], want["evaluated"])  # fmt: skip


def test_number_columns_read_as_pandas_reads_float_or_none() -> None:
    """``columns.numbers``: float64 with NaN where unknown, the same array when it already is
    (no copy of a logged column), an object column of None when nothing is known; read back as
    float | None by ``known_floats`` / ``optional_objects`` either way it is held."""
    from llmgw_kernel.replay.columns import known_floats, numbers

    logged = np.array([0.5, np.nan, 2.0])
    assert numbers(logged, ~np.isnan(logged)) is logged
    kernel = np.array([0.5, 0.0, 2.0])  # the kernel's value where a cost is unknown is 0, not NaN
    got = numbers(kernel, np.array([True, False, True]))
    assert got.dtype == np.float64 and optional_objects(got).tolist() == [0.5, None, 2.0]
    assert str(pd.Series(to_pandas(got)).dtype) == str(pd.Series([0.5, None, 2.0]).dtype) == "float64"
    nothing = numbers(kernel, np.zeros(3, bool))
    assert nothing.dtype == object and nothing.tolist() == [None] * 3
    assert str(pd.Series(to_pandas(nothing)).dtype) == str(pd.Series([None] * 3).dtype)
    for held in (got, np.array([0.5, None, 2.0], object), [0.5, None, 2.0]):
        values, known = known_floats(held)
        assert known.tolist() == [True, False, True] and values[known].tolist() == [0.5, 2.0]


def test_other_source_compares_null_and_values_row_by_row() -> None:
    """A replayed source differs from the logged one unless both are the same id or both NULL;
    the replayed sources as Arrow strings or as an object array alike."""
    from llmgw_kernel.replay.window import as_window

    logged = ["a", "b", None, None, "c", "a"]
    replayed = ["a", "c", None, "a", None, "a"]
    w = as_window({"request_id": [f"r{i}" for i in range(6)], "cache_source": logged})
    want = [False, True, False, True, True, False]
    assert fold_columns._other_source(w, pa.array(replayed, pa.string())).tolist() == want
    assert fold_columns._other_source(w, np.array(replayed, object)).tolist() == want
    nulls = as_window({"request_id": ["x", "y"], "cache_source": [None, None]})  # a column of NULL type
    assert fold_columns._other_source(nulls, pa.array(["a", None], pa.string())).tolist() == [True, False]


def test_the_cache_summary_reads_saved_as_floats_or_objects(log, tmp_path):
    """``cache_stage.summary`` gives the same figures for ``saved`` as float64 with NaN (the
    compiled fold's column) and as float | None objects (the per-row form)."""
    from llmgw_kernel.replay.cache_stage import summary

    c = composer(log, _doc("evict"), tmp_path)
    f = run_compiled(c)
    assert f is not None
    kinds, saved = f.column("cache_kind"), f.column("saved")
    assert saved.dtype == np.float64 and np.isnan(saved).any()
    assert summary(c.window, kinds, saved, f.source_targets) == summary(
        c.window, kinds, optional_objects(saved), f.source_targets
    )
