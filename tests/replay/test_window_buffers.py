"""A window read through the ``requests`` view holds its plain columns in buffers of its own: a
DuckDB result's columns are freed together, only once none is referenced, so plain columns kept
from it held the strings of the columns the window coded (a 1M-row window: ~115 MB of its peak).
The log is ``benchmarks/replay_scale.py``'s synthetic log, written through the real log writer."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest

from llmgw_kernel.replay import load_window
from llmgw_kernel.replay import window as window_mod
from llmgw_kernel.replay.stages import REPLAY_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.mark.parametrize("later", [False, True], ids=["first-scan", "prefetch"])
def test_plain_columns_do_not_hold_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, later: bool) -> None:
    d = tmp_path / "log"
    replay_scale.generate(d, 3_000, seed=3, chunk=1_000)
    monkeypatch.setattr(window_mod, "CACHE", False)  # through the view
    before = pa.total_allocated_bytes()
    w = load_window(str(d), prefetch=() if later else REPLAY_COLUMNS)
    if later:
        w.prefetch(REPLAY_COLUMNS)
    assert w.coded, "no column was coded: nothing to free"
    first = ("request_id", "ts") if later else ()  # the first scan's: nothing was coded in it
    plain = sum(w.table.column(n).nbytes for n in w.table.column_names if n not in w.coded and n not in first)
    # the plain columns live in Arrow's pool (copied out of DuckDB's result): before, ~0 of them did
    assert pa.total_allocated_bytes() - before >= plain > 0
    plain_view = load_window(str(d), prefetch=REPLAY_COLUMNS)
    for name in REPLAY_COLUMNS:  # the same values
        assert w.arrow(name).equals(plain_view.arrow(name)), name
