"""What the compiled fold's inputs read from the log, and what they keep of it (issue 11: a
full replay's memory).

- the bodies of the few rows whose exact key is not logged are the only bodies read (selected
  by DuckDB in its scan: ``Window.where``), never the whole ``request_body`` column; the teams
  are computed in the scan (``Window.computed``), the metadata never read;
- the columns only the fold reads are scanned once, kept as codes or float64 (``Cols.compact``)
  and released from the window: every later read of them goes through those forms, which give
  the same Python values as the log's Arrow column (ints stay ints, NULL stays None);
- the kernel's result gives every stage the same object array per field (made once).

Log: ``benchmarks/replay_scale.py``'s synthetic log (written through the real log writer by the
live decision functions) under its live policy; a run-out budget refuses part of it, so some
rows never reached a cache live and are keyed from their bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.log.reader import open_log
from llmgw_kernel.replay import _state_before, fold_cache_inputs, load_window
from llmgw_kernel.replay.columns import optional_objects
from llmgw_kernel.replay.fold import Composer
from llmgw_kernel.replay.fold_cache_inputs import NEVER_CACHED
from llmgw_kernel.replay.fold_codes import Cols
from llmgw_kernel.replay.fold_inputs import FOLD_COLUMNS, inputs
from llmgw_kernel.replay.fold_kernel import FoldedArrays, run_compiled
from llmgw_kernel.replay.stages import decide

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(scale_log_6000: Path) -> Path:
    """replay_scale.generate(6_000): built once per session (tests/conftest.py), only read here."""
    return scale_log_6000


def _composer(data_dir: Path) -> Composer:
    pol = load_policy(replay_scale.policy_doc("live"))
    con = open_log(str(data_dir))
    window = load_window(con)
    history, start, warm = _state_before(pol, con, window, None)
    c = decide(pol, window, history, start, warm, fold=False).composer
    assert c is not None
    return c


def _spy(c: Composer) -> list[list[str]]:
    """Record the columns of every whole-column scan and every streamed read of the window's log."""
    log: Any = c.window._log
    seen: list[list[str]] = []
    scan, batches = log.scan, log.batches

    def spied_scan(names: list[str], where: str | None = None) -> Any:
        seen.append(["scan", *names] + ([f"WHERE {where}"] if where else []))
        return scan(names, where)

    def spied_batches(names: list[str], rows: int = 65_536, where: str | None = None) -> Any:
        seen.append(["stream", *names] + ([f"WHERE {where}"] if where else []))
        return batches(names, rows, where)

    log.scan, log.batches = spied_scan, spied_batches
    return seen


def test_the_inputs_read_only_keyless_rows_bodies_and_each_fold_column_once(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a log written before the cache_team / exact_key columns (test_fold_logged_scalars: with them)
    monkeypatch.setattr(fold_cache_inputs, "_in_log", lambda w, name: False)
    c = _composer(data_dir)
    seen = _spy(c)
    made = inputs(c)
    assert made is not None
    body_reads = [s for s in seen if "request_body" in s]
    # some rows are keyed from their bodies (refused live): DuckDB reads only those rows' bodies
    assert body_reads == [["stream", "request_id", "ts", "request_body", f"WHERE {NEVER_CACHED}"]], body_reads
    # the teams are computed in the scan: the metadata itself is never read into Arrow
    assert not [s for s in seen if "metadata" in s], seen
    assert ["scan", "request_id", "_team_json"] in seen, seen
    # the fold's own columns' codes are dropped with their columns once the inputs are made
    assert not ({"key_id", "end_user", "cache_key", "cache_control"} & c.window.coded), c.window.coded
    scanned = [name for s in seen if s[0] == "scan" for name in s[2:] if name != "request_id"]
    again = sorted({n for n in scanned if scanned.count(n) > 1 and n in FOLD_COLUMNS})
    assert not again, f"fold columns scanned more than once: {again}"


def test_compacted_columns_read_as_the_log_holds_them(data_dir: Path) -> None:
    c = _composer(data_dir)
    w = c.window
    names = ["key_id", "end_user", "key_version", "reserved_tokens", "reserved_usd", "admitted_ts", "cache_key"]
    w.prefetch(names)
    rows = np.arange(len(w))
    want = {n: w.arrow(n).take(rows).to_pylist() for n in names}
    for n in ("end_user", "reserved_tokens", "cache_key"):  # values and NULLs of both kinds of column
        assert None in want[n] and any(v is not None for v in want[n]), n
    cols = Cols(w, None)
    cols.compact(names)
    for n in names:
        assert n not in w.table.column_names, f"{n} still held as Arrow"
        got = cols.values(n, rows)
        assert got == want[n], n
        assert [type(v) for v in got] == [type(v) for v in want[n]], n  # ints stay ints, None stays None
    assert np.array_equal(cols.num("reserved_usd")[rows], np.array(want["reserved_usd"], float), equal_nan=True)


def test_the_compiled_result_makes_each_column_once(data_dir: Path) -> None:
    c = _composer(data_dir)
    folded = run_compiled(c)
    assert folded is not None
    for name in ("cost", "saved", "served_by", "cache_kind", "admission"):
        assert folded.column(name) is folded.column(name), name
    cost = folded.column("cost")  # float64, NaN where unpriced; the list reads None there
    assert cost.dtype == np.float64 and optional_objects(cost).tolist() == folded.cost
    # the kernel's output is not held past its use: the worded admission facts, the arrays a made column is made of
    assert isinstance(folded, FoldedArrays)
    kept = folded._out
    assert not hasattr(kept, "adm_spent") and not hasattr(kept, "tokens") and not hasattr(kept, "cost_nano")
    assert kept.cost is None and kept.saved is None and kept.cache_src is not None


def test_the_inputs_keep_no_compacted_column_once_made(data_dir: Path) -> None:
    """What decoding the kernel's output needs (a warm row's cost) holds a few Arrow columns, not
    the ``Cols`` whose compacted columns (1M float64 each at scale) would then live through the
    stages."""
    import gc

    c = _composer(data_dir)
    made = inputs(c)
    assert made is not None
    gc.collect()
    alive = [o for o in gc.get_objects() if type(o) is Cols and o.w is c.window]  # (type: no weak proxies)
    assert not alive, f"{len(alive)} Cols still referenced after the inputs were made"
    assert made.decoding.warm_cost(0) is None or isinstance(made.decoding.warm_cost(0), float)
