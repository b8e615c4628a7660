"""What the compiled fold's inputs hold while they are made (issue 11: a second replay in one
process peaked over 1 GB per 1M rows at the limit groups and the serving facts, where numba's
code, resident after a first replay, sits under the inputs' arrays): columns are freed after
their last reader, and codes are not copied into wider integers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from test_fold_kernel import assert_same, composer, live

from llmgw_kernel.replay import fold_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402

#: read by the order and the cache's arrays only
_TIMES = {"ts_end", "admitted_ts", "settled_ts", "cache_lookup_ts", "cache_stored_ts", "temperature"}
#: read by the serving facts' logged usage only
_USAGE = {"cost_usd", "cached_tokens"}


def test_the_fold_inputs_free_columns_after_their_last_reader(tmp_path, monkeypatch):
    d = tmp_path / "log"
    replay_scale.generate(d, 3000, seed=5, chunk=1500)
    c = composer(d, live(), tmp_path)
    seen: dict[str, Any] = {}
    real_groups, real_served = fold_inputs._groups, fold_inputs._served

    def groups(c_: Any, cols: Any, *args: Any) -> Any:
        seen["compacted"], seen["at groups"] = set(cols._compacted), set(cols._num)
        seen["warm codes"] = [k for k in cols._memo if k[0] in ("codesTrue", "idsTrue")]
        return real_groups(c_, cols, *args)

    def served(c_: Any, cols: Any, order: Any, plan_code: np.ndarray, plans: Any, logged: np.ndarray, a: Any) -> Any:
        seen["plan dtypes"] = {plan_code.dtype, logged.dtype}
        out = real_served(c_, cols, order, plan_code, plans, logged, a)
        seen["after served"] = set(cols._num)
        return out

    monkeypatch.setattr(fold_inputs, "_groups", groups)
    monkeypatch.setattr(fold_inputs, "_served", served)
    assert fold_inputs.inputs(c) is not None
    assert seen["compacted"] >= _TIMES, "the times were not compacted: the test tells nothing"
    assert not _TIMES & seen["at groups"], "the times are held past the order"
    assert not seen["warm codes"], "the warm rows' codes are held past the cache's arrays"
    assert seen["plan dtypes"] == {np.dtype(np.int32)}, "the plan codes were widened"
    assert seen["compacted"] >= _USAGE and not _USAGE & seen["after served"], "the logged usage is held"
    monkeypatch.undo()
    assert_same(composer(d, live(), tmp_path))  # and the kernel still folds as the Python fold


def test_nano_of_rounds_half_to_even_as_python():
    usd = np.array([0.0, 1e-9, 2.5e-9, 3.5e-9, 0.1234567895, 12.5, -2.5e-9], np.float64)
    assert fold_inputs.nano_of(usd).tolist() == [round(float(u) * fold_inputs.NANO) for u in usd]
    assert fold_inputs.nano_of(usd).dtype == np.int64


def test_without_a_semantic_row_the_per_row_semantic_facts_are_one_element(tmp_path):
    """No row reads a semantic cache: its per-row facts (read at a semantic row only) are one
    element each, not ~61 MB of zeros per 1M rows (a second replay in a process writes them)."""
    d = tmp_path / "log"
    replay_scale.generate(d, 3000, seed=5, chunk=1500)
    c = composer(d, live(), tmp_path)
    inp = fold_inputs.inputs(c)
    assert inp is not None
    a = inp.arrays
    assert len(a["s_on"]) == len(a["canon"]) > 1 and not a["s_on"].any(), "a semantic row: the test tells nothing"
    per_row = ("s_store", "s_group", "s_mat", "s_vi", "s_feat", "s_max_e", "s_ttl", "s_thr", "s_verify")
    assert {k: len(a[k]) for k in per_row} == dict.fromkeys(per_row, 1)
    assert_same(composer(d, live(), tmp_path))  # and the kernel folds as the Python fold


def test_the_fold_inputs_leave_no_numbers_in_the_window(tmp_path):
    """The numbers the inputs read of columns the window holds (the times, the logged cost and
    cached tokens) are freed with the inputs, not kept by the window past the fold (~24 MB per
    1M rows under the kernel and the stages); a later reader makes them again."""
    d = tmp_path / "log"
    replay_scale.generate(d, 3000, seed=5, chunk=1500)
    c = composer(d, live(), tmp_path)
    numbers = lambda: {k for k in c.window._memo if k[0] in ("numpy", "epoch")}  # noqa: E731
    before = numbers()
    assert fold_inputs.inputs(c) is not None
    assert numbers() <= before, f"kept by the window: {sorted(numbers() - before)}"
    assert np.array_equal(c.window.numpy("cost_usd"), c.window.arrow("cost_usd").to_numpy(zero_copy_only=False),
                          equal_nan=True)  # fmt: skip


def test_all_distinct_hashes_chunk_by_chunk_with_few_temporaries():
    """The request ids' distinctness test (window and warm rows: two chunks) reads the chunks as
    they are and 8 bytes of every id at a time: its numpy temporaries beside the hashes stay
    about one more hash array (a padded copy of every id was ~40 MB per 1M rows), same answers."""
    import tracemalloc

    import pyarrow as pa

    from llmgw_kernel.replay.fold_codes import all_distinct

    n = 200_000
    ids = pa.array([f"{i * 7919 + 13:032x}" for i in range(n)])
    two = pa.chunked_array([ids.slice(0, 1000), ids.slice(1000)])
    tracemalloc.start()
    try:
        assert all_distinct(two)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3.5 * 8 * n, f"{peak / 2**20:.1f} MB of temporaries for {n:,} ids"
    assert all_distinct(ids) and all_distinct(ids.slice(7, 300))
    assert not all_distinct(pa.chunked_array([ids.slice(0, 1000), ids.slice(500, 10)]))  # a repeat across chunks
    assert not all_distinct(pa.chunked_array([pa.array(["abc"]), pa.array(["abcd"])]))  # widths differ
    assert all_distinct(pa.chunked_array([], pa.string())) and not all_distinct(pa.array(["ab", None]))
