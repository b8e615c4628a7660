"""stateless.source_rows: the window row of each cache source — one lookup for the stateless
outcome and (once fold_columns imports it) the fold's inputs and the cache stage."""

from __future__ import annotations

import pyarrow as pa  # type: ignore[import-untyped]

from llmgw_kernel.replay.stateless import source_rows
from llmgw_kernel.replay.window import as_window


def test_a_window_given_as_columns_keeps_the_last_row_of_a_repeated_id() -> None:
    # ids may repeat in columns given by a caller: the row a dict built row by row keeps (the last)
    w = as_window({"request_id": ["a", "b", "a", "c", "b"], "cache": ["miss", None, "hit", "hit", "miss"],
                   "cache_source": [None, None, "a", "b", None]})  # fmt: skip
    assert source_rows(w, pa.array(["a", "b", None, "z", "c"])).tolist() == [2, 4, -1, -1, 3]
    assert source_rows(w, pa.chunked_array([["c"], ["a", None]])).tolist() == [3, 2, -1]
    assert source_rows(w, pa.array([None, None], pa.string())).tolist() == [-1, -1]


def test_a_window_without_a_cache_column_probes_every_row() -> None:
    w = as_window({"request_id": ["x", "y", "z"]})
    assert source_rows(w, pa.array(["z", "x", "q"])).tolist() == [2, 0, -1]
