"""The replay cache's checked sums, remembered across processes (``segment_cache.VERIFIED``), and
the window's order read from the time stamps (``segment_cache.window_order``).

A column of an entry whose CRC a replay checked is not summed again by a later replay (a later
process: each ``replay()`` makes its own ``SegmentCache``, as a new process does) while the entry's
file keeps its identity (device, inode, size, modification and change time). An entry written
over in place — same size, its modification time set back — has another change time: it is
checked again, and its damage is caught (the answer is the one without the cache). A damaged memo
is ignored.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from replay_logs import three_segment_log

from llmgw_kernel import replay
from llmgw_kernel.replay import segment_cache, window_codes
from llmgw_kernel.replay import window as window_mod


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return three_segment_log(tmp_path_factory, "verified", seed=11)


@pytest.fixture
def log(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "log"
    shutil.copytree(synthetic, d)
    monkeypatch.setattr(segment_cache, "MIN_BYTES", 0)  # this small log's segments are cached too
    monkeypatch.delenv(segment_cache.ENV, raising=False)
    return d


class Sums:
    """Counts the CRCs computed (the real function runs), and what each replay's cache served."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.stats: list[dict[str, int]] = []
        crc, load = segment_cache._crc, segment_cache.load_head

        def counted(col: Any) -> int:
            self.count += 1
            return crc(col)

        def spy(con: Any, cache: Any, *args: Any) -> Any:
            out = load(con, cache, *args)
            self.stats.append(dict(cache.stats))
            return out

        monkeypatch.setattr(segment_cache, "_crc", counted)
        monkeypatch.setattr(segment_cache, "load_head", spy)


def _replay(log: Path, monkeypatch: pytest.MonkeyPatch, cache: bool = True) -> Any:
    monkeypatch.setattr(window_mod, "CACHE", cache)
    try:
        return replay(str(log / "policy-routing.yaml"), str(log))
    finally:
        monkeypatch.setattr(window_mod, "CACHE", True)


def _same(a: Any, b: Any) -> None:
    pd.testing.assert_frame_equal(a.decisions, b.decisions, check_exact=True)
    assert a.summary == b.summary


def test_a_later_process_does_not_sum_a_checked_entry_again(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _replay(log, monkeypatch, cache=False)
    _replay(log, monkeypatch)  # cold: writes the entries
    sums = Sums(monkeypatch)
    _same(_replay(log, monkeypatch), plain)  # warm: checks each column it reads once, remembers them
    assert sums.count > 0 and sums.stats[-1]["cached"] == 3
    first = sums.count
    sums.count = 0
    _same(_replay(log, monkeypatch), plain)  # a new SegmentCache, as in a new process
    assert (sums.count, sums.stats[-1]["cached"]) == (0, 3), first  # before: every column read summed again
    memo = json.loads((log / "replay-cache" / segment_cache.VERIFIED).read_text())
    assert set(memo) == {p.name for p in (log / "replay-cache").glob("seg-*.arrow")}


def _scribbled_in_place(entry: Path) -> None:
    """2 KB written over ``entry`` at 7 places through the file system, its size and inode kept and
    its modification time set back: only its change time tells."""
    st = entry.stat()
    with open(entry, "r+b") as f:
        for at in range(st.st_size // 8, st.st_size - st.st_size // 8, st.st_size // 8):
            f.seek(at)
            f.write(b"\xa5" * 2048)
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = entry.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert after.st_ctime_ns != st.st_ctime_ns


def test_an_entry_rewritten_in_place_with_its_size_and_mtime_is_checked_again(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _replay(log, monkeypatch, cache=False)
    _replay(log, monkeypatch)  # cold
    _replay(log, monkeypatch)  # warm: the memo holds every entry
    entries = sorted((log / "replay-cache").glob("seg-*.arrow"))
    _scribbled_in_place(entries[1])
    sums = Sums(monkeypatch)
    _same(_replay(log, monkeypatch), plain)  # the damage caught: that entry read from Parquet again
    assert sums.count > 0 and sums.stats[-1]["written"] == 1, sums.stats
    sums.count = 0
    _same(_replay(log, monkeypatch), plain)  # the rewritten entry is checked once, then remembered
    _same(_replay(log, monkeypatch), plain)
    assert sums.stats[-1] == {"cached": 3, "written": 0, "tail": 0}


def test_a_damaged_entry_whose_identity_changed_is_caught(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry copied over another (the same size and modification time kept by ``cp -p``-like
    copying): another inode and change time, so its columns are summed and the mismatch caught."""
    plain = _replay(log, monkeypatch, cache=False)
    _replay(log, monkeypatch)
    _replay(log, monkeypatch)
    entries = sorted((log / "replay-cache").glob("seg-*.arrow"))
    copy = entries[0].with_name(".copy")
    shutil.copy2(entries[1], copy)
    copy.replace(entries[0])
    sums = Sums(monkeypatch)
    _same(_replay(log, monkeypatch), plain)
    assert sums.count > 0 and sums.stats[-1]["written"] == 1, sums.stats


@pytest.mark.parametrize("damage", [b"{not json", b"[1, 2]", b'{"x": {"id": [1], "crc": 3}}', b""])
def test_a_damaged_memo_is_ignored_and_written_again(log: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes) -> None:
    plain = _replay(log, monkeypatch, cache=False)
    _replay(log, monkeypatch)
    _replay(log, monkeypatch)
    memo = log / "replay-cache" / segment_cache.VERIFIED
    memo.write_bytes(damage)
    sums = Sums(monkeypatch)
    _same(_replay(log, monkeypatch), plain)
    assert sums.count > 0  # nothing trusted
    assert set(json.loads(memo.read_text())) == {p.name for p in (log / "replay-cache").glob("seg-*.arrow")}


def _reference(ids: pa.Array, ts: pa.Array) -> np.ndarray:
    return pc.sort_indices(
        pa.table({"ts": ts, "request_id": ids}), [("ts", "ascending"), ("request_id", "ascending")]
    ).to_numpy()


@pytest.mark.parametrize("seed", range(12))
def test_the_window_order_is_arrows_sort(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``window_order`` equals ``sort_indices`` by (ts, request_id), stable: time stamps in order
    with runs of ties (ids in any order, non-ASCII, repeated), out of order, with NULLs, and more
    tied runs than are sorted one by one."""
    rng = np.random.default_rng(seed)
    n = 2_000
    us = np.cumsum(rng.integers(0, 3, n)) + 1_700_000_000_000_000  # steps of 0: ties
    if seed % 4 == 1:
        us[rng.integers(0, n, 5)] -= 50  # out of order
    letters = np.array(list("aAzZ09_-éß€😀"))
    ids = ["".join(rng.choice(letters, rng.integers(0, 4))) for _ in range(n)]
    if seed % 4 == 2:
        monkeypatch.setattr(segment_cache, "TIED_RUNS_MAX", 3)
    ts_arr = pa.array(us, pa.timestamp("us", "UTC"))
    id_arr = pa.array(ids, pa.string())
    if seed % 4 == 3:
        mask = rng.random(n) < 0.01
        ts_arr = pa.array(us, pa.timestamp("us", "UTC"), mask=mask)
        id_arr = pa.array([None if i % 97 == 0 else v for i, v in enumerate(ids)], pa.string())
    got = segment_cache.window_order(id_arr, ts_arr)
    want = _reference(id_arr, ts_arr)
    if got is None:
        assert np.array_equal(want, np.arange(n))
    else:
        assert got.type == pa.uint64() and np.array_equal(got.to_numpy(), want)
        assert not np.array_equal(want, np.arange(n))


def test_the_window_order_in_order_and_with_ties_already_sorted() -> None:
    ts = pa.array([1, 2, 2, 2, 5, 7, 7], pa.timestamp("us", "UTC"))
    assert segment_cache.window_order(pa.array(list("abcdefg")), ts) is None
    got = segment_cache.window_order(pa.array(["a", "b", "z", "c", "e", "g", "f"]), ts)
    assert got is not None and got.to_pylist() == [0, 1, 3, 2, 4, 6, 5]


def _pieces(values: list[str | None], cut: int) -> list[segment_cache.Piece]:
    """``values`` (scan order) as two segments' coded pieces, each coded on its own."""
    out = []
    for part in (values[:cut], values[cut:]):
        enc = pa.array(part, pa.string()).dictionary_encode()
        codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
        out.append(segment_cache.Piece(codes=codes, values=enc.dictionary.to_pylist(), type=pa.string()))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_codes_in_window_order_number_values_as_dictionary_encode_does(seed: int) -> None:
    """An order that moves rows only inside runs of tied rows keeps the segments' order of first
    appearance unless a run holds a value's first appearance (then it is renumbered): the codes
    and values equal ``dictionary_encode`` of the column in window order."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 120))  # few values per row: coded (CODED_MAX_SHARE)
    pool = ["a", "b", "c", "d", "e", None][: int(rng.integers(2, 7))]
    scan = [pool[int(i)] for i in rng.integers(0, len(pool), n)]
    idx = np.arange(n, dtype=np.uint64)
    for lo in sorted(set(rng.integers(0, n - 1, int(rng.integers(1, 5))).tolist())):
        hi = min(n, lo + int(rng.integers(2, 4)))
        idx[lo:hi] = idx[lo:hi][rng.permutation(hi - lo)]  # runs may touch: still permutations of themselves
    moved = np.flatnonzero(idx != np.arange(n, dtype=np.uint64))
    runs = window_codes.moved_runs(
        idx, moved, segment_cache.TIED_RUNS_MAX
    )  # None when a run is not a permutation of itself (a fixed row inside)
    col, coded = window_codes.coded_column(_pieces(scan, int(rng.integers(0, n + 1))), idx, moved, runs)
    want = pa.array([scan[int(i)] for i in idx], pa.string()).dictionary_encode()
    assert coded is not None
    codes, values = coded
    assert values == want.dictionary.to_pylist()
    assert codes.tolist() == pc.fill_null(want.indices, -1).to_pylist()
    assert col.dictionary_decode().to_pylist() == [scan[int(i)] for i in idx]


def test_a_run_holding_a_first_appearance_renumbers() -> None:
    scan = ["a", "a", "b", "c", "a", *["a"] * 40]
    idx = np.arange(len(scan), dtype=np.uint64)
    idx[2:4] = [3, 2]  # window order: a a c b a ...
    moved = np.flatnonzero(idx != np.arange(len(scan), dtype=np.uint64))
    runs = window_codes.moved_runs(idx, moved, segment_cache.TIED_RUNS_MAX)
    _, coded = window_codes.coded_column(_pieces(scan, 5), idx, moved, runs)
    assert coded is not None and coded[1] == ["a", "c", "b"] and coded[0][:5].tolist() == [0, 0, 1, 2, 0]


def test_a_run_without_a_first_appearance_keeps_the_segments_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window_codes, "_first_appearance", None)  # not needed: not called
    scan = ["a", "b", "a", "b", "c", *["a"] * 40]
    idx = np.arange(len(scan), dtype=np.uint64)
    idx[2:4] = [3, 2]  # window order: a b b a c ...
    moved = np.flatnonzero(idx != np.arange(len(scan), dtype=np.uint64))
    runs = window_codes.moved_runs(idx, moved, segment_cache.TIED_RUNS_MAX)
    assert runs is not None and runs[0].tolist() == [2] and runs[1].tolist() == [4]
    _, coded = window_codes.coded_column(_pieces(scan, 3), idx, moved, runs)
    assert coded is not None and coded[1] == ["a", "b", "c"] and coded[0][:5].tolist() == [0, 1, 1, 0, 2]
