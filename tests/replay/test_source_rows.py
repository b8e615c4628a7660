"""stateless.source_rows: the window row of each cache source — one lookup for the stateless
outcome, the fold's inputs and the cache stage (one rule: fold_columns kept a copy until 2026-12-06)."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from llmgw_kernel.replay.stateless import source_rows
from llmgw_kernel.replay.window import as_window, load_window


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


def _window_of(ids: list[str | None], chunks: int) -> Any:
    """A window whose ``request_id`` column is ``ids`` in ``chunks`` chunks (as a log's is)."""
    from llmgw_kernel.replay.window import Window

    step = max(1, -(-len(ids) // chunks))
    parts = [ids[i : i + step] for i in range(0, len(ids), step)] or [[]]
    table = pa.table({"request_id": pa.chunked_array([pa.array(p, pa.string()) for p in parts], pa.string())})
    return Window(None, table, None, ["request_id"], False)


@pytest.mark.parametrize("one_width", [False, True])
@pytest.mark.parametrize("chunks", [1, 3, 17])
def test_source_rows_equal_a_dict_built_row_by_row(chunks: int, one_width: bool) -> None:
    # ids of every length (empty, one byte, multi-byte characters, longer than a word), repeated,
    # NULL; sources that are in the window, outside it, NULL — the last row with each id wins.
    # one_width: every source 28 bytes long (a gateway's ids; "é" is 2 bytes), so that only the
    # ids whose last word may be a source's are hashed (stateless._maybe_sources); some chunks
    # then hold ids of one length only (read as one strided view), others not
    rng = random.Random(chunks * 2 + one_width)
    gateway = [f"req_{rng.getrandbits(96):024x}" for _ in range(40)] + [
        "req_éééééééééééé",
        "req_00000000000000000000001x",
    ]
    pool = ["", "a", "é", "req_0", "x" * 40, "req_00000000000000000000001", *gateway]
    ids = [None if rng.random() < 0.05 else rng.choice(pool) for _ in range(600)]
    if one_width:  # a run of ids of one length, as a log's chunk holds
        ids[100:300] = [rng.choice(gateway) for _ in range(200)]
    last = {i: row for row, i in enumerate(ids) if i is not None}
    choices = [*gateway, "req_ffffffffffffffffffffffff"] if one_width else [*pool, "outside"]
    sources = [None if rng.random() < 0.2 else rng.choice(choices) for _ in range(300)]
    want = [last.get(s, -1) if s is not None else -1 for s in sources]
    w = _window_of(ids, chunks)
    assert source_rows(w, pa.array(sources, pa.string())).tolist() == want
    assert source_rows(w, pa.chunked_array([sources[:100], sources[100:]], pa.string())).tolist() == want
    if one_width:  # the same with the ids of one length only, in whole chunks
        fixed = [rng.choice(gateway) for _ in range(500)]
        last = {i: row for row, i in enumerate(fixed)}
        want = [last.get(s, -1) if s is not None else -1 for s in sources]
        assert source_rows(_window_of(fixed, chunks), pa.array(sources, pa.string())).tolist() == want


def test_a_window_of_no_rows_or_only_null_ids_finds_no_source() -> None:
    assert source_rows(as_window({"request_id": []}), pa.array(["a", None])).tolist() == [-1, -1]
    assert source_rows(as_window({"request_id": [None, None]}), pa.array(["a", None])).tolist() == [-1, -1]


def test_a_window_read_from_a_log_finds_each_logged_source(tmp_path: Path) -> None:
    # a log written through the real log writer (replay_scale's synthetic traffic: exact hits
    # whose sources are earlier misses), in several segments: its ids are unique and one length,
    # so the sources are looked up in the few ids that may be one (stateless._maybe_sources)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import replay_scale

    d = tmp_path / "log"
    replay_scale.generate(d, 3000, seed=5, chunk=700)
    w = load_window(str(d), columns=("request_id", "cache", "cache_source"))
    assert w.from_log
    ids, sources = w["request_id"], w["cache_source"]
    row_of = {i: row for row, i in enumerate(ids)}
    want = [row_of.get(s, -1) if s is not None else -1 for s in sources]
    assert sum(r >= 0 for r in want) > 100  # hits whose source is in the window
    got = source_rows(w, w.arrow("cache_source"))
    assert got.tolist() == want
    some = [s if s is None or k % 3 else s[:-1] + "?" for k, s in enumerate(sources)]  # sources not in it
    assert source_rows(w, pa.array(some, pa.string())).tolist() == [
        row_of.get(s, -1) if s is not None else -1 for s in some
    ]
