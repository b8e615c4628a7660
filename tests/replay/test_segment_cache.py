"""The columnar replay cache of sealed segments (``replay/segment_cache.py``) changes nothing a replay
decides: replays with the cache (cold: built by the replay; warm: read from it) equal replays
through the ``requests`` view, decisions row by row and summary figure by figure — over the whole
log, over a window that starts and ends mid-log, while a writer adds segments, and across a merge
of segments between two replays.

The log is the synthetic log of ``benchmarks/replay_scale.py``, written through the real log
writer (fallbacks, unknown models, refusals, exact hits, bodies).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from llmgw_kernel import replay
from llmgw_kernel.log import segments as seg_layout
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.replay import load_window, segment_cache
from llmgw_kernel.replay import window as window_mod
from llmgw_kernel.replay.stages import REPLAY_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("segcache") / "log"
    replay_scale.generate(d, 9_000, seed=5, chunk=600)  # 15 flushes: one short of a merge
    return d


@pytest.fixture
def log(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the synthetic log (the cache is written into it); every segment cached."""
    d = tmp_path / "log"
    shutil.copytree(synthetic, d)
    monkeypatch.setattr(segment_cache, "MIN_BYTES", 0)
    monkeypatch.delenv(segment_cache.ENV, raising=False)
    return d


class Spy:
    """Counts what the cache served (segments from the cache, written, read as the live tail)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stats: list[dict[str, int]] = []
        load = segment_cache.load_head

        def spy(con: Any, cache: Any, *args: Any) -> Any:
            out = load(con, cache, *args)
            self.stats.append({**cache.stats, "served": out is not None})
            return out

        monkeypatch.setattr(segment_cache, "load_head", spy)

    def last(self) -> dict[str, int]:
        return self.stats[-1]


def replayed(policy: Path, data_dir: Path, cache: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    monkeypatch.setattr(window_mod, "CACHE", cache)
    try:
        return replay(policy, str(data_dir), **kw)
    finally:
        monkeypatch.setattr(window_mod, "CACHE", True)


def assert_same(a: Any, b: Any) -> None:
    pd.testing.assert_frame_equal(a.decisions, b.decisions, check_exact=True)
    assert a.summary == b.summary
    assert a.differences == b.differences


def test_replays_with_the_cache_equal_replays_through_the_view(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    for kind in ("routing", "live"):
        policy = log / f"policy-{kind}.yaml"
        plain = replayed(policy, log, False, monkeypatch)
        cold = replayed(policy, log, True, monkeypatch)
        first = spy.last()
        warm = replayed(policy, log, True, monkeypatch)
        assert spy.last()["served"] and spy.last()["cached"] == len(list((log / "replay-cache").glob("*.arrow"))) > 1
        assert spy.last()["written"] == 0 and spy.last()["tail"] == 0
        if kind == "routing":
            assert first["written"] > 1, first  # built by the first replay
        assert len(plain.decisions) == 9_000
        assert_same(cold, plain)
        assert_same(warm, plain)


def test_a_window_that_starts_and_ends_mid_log(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    con_ts = load_window(str(log)).arrow("ts").to_pylist()
    since, until = con_ts[2_345], con_ts[7_001]  # mid-segment on both sides
    for kind in ("routing", "live"):
        policy = log / f"policy-{kind}.yaml"
        plain = replayed(policy, log, False, monkeypatch, since=since, until=until)
        for _ in range(2):  # cold, then warm
            cached = replayed(policy, log, True, monkeypatch, since=since, until=until)
            assert spy.last()["served"]
            assert_same(cached, plain)
        assert 4_000 < len(plain.decisions) < 4_700


def _out_of_order(log: Path) -> None:
    """Add a segment whose rows fall between the log's (some at the very same time stamps, with
    request ids sorting before and after), on routes in another order of first appearance."""
    ts = load_window(str(log)).arrow("ts").to_pylist()
    writer = LogWriter(log, flush_ms=3_600_000, journal=False)
    routes = ["zz-new-route", "summarize", None, "chat", "batch"]
    for i in range(500):
        rec = _record(i, ts[i * 17].timestamp())
        rec.request_id = ("req_0" if i % 2 else "req_z") + f"{i:05d}"
        rec.route = routes[i % len(routes)]
        writer.append(rec)
    writer.close()


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "out-of-order"])
def test_the_window_holds_what_the_view_gives(log: Path, monkeypatch: pytest.MonkeyPatch, shuffled: bool) -> None:
    """The window itself: every column's values and type, the codes and their order, the scan
    order (a later scan of another column lines up without matching by id); also for a log whose
    segments are not in time order (rows sharing a time stamp)."""
    if shuffled:
        _out_of_order(log)
        for kind in ("routing", "live"):
            policy = log / f"policy-{kind}.yaml"
            assert_same(replayed(policy, log, True, monkeypatch), replayed(policy, log, False, monkeypatch))
    head = (*REPLAY_COLUMNS, "guardrails")
    monkeypatch.setattr(window_mod, "CACHE", False)
    plain = load_window(str(log), prefetch=head)
    monkeypatch.setattr(window_mod, "CACHE", True)
    load_window(str(log), prefetch=head)  # cold
    realigned: list[Any] = []
    monkeypatch.setattr(window_mod.Window, "_realigned", lambda self, names: realigned.append(names))
    cached = load_window(str(log), prefetch=head)
    assert cached.table.schema == plain.table.schema
    for name in plain.table.column_names:
        assert cached.arrow(name).equals(plain.arrow(name)), name
    assert cached.coded == plain.coded and len(plain.coded) > 5
    for name in plain.coded:
        c, p = cached.codes(name), plain.codes(name)
        assert np.array_equal(c[0], p[0]) and c[1] == p[1], name
    assert (cached._order is None) == (plain._order is None) == (not shuffled)
    if shuffled:
        assert cached._order.equals(plain._order)
    assert cached.numpy("ttft_ms").tobytes() == plain.numpy("ttft_ms").tobytes()  # not in the first scan
    assert realigned == []


def _record(i: int, ts: float) -> RequestRecord:
    rec = RequestRecord(f"req_later_{i:06d}", ts, "chat.completions")
    rec.route, rec.status, rec.outcome = "chat", 200, "ok"
    return rec


def test_a_log_being_written_while_it_is_replayed(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer adds segments (and merges them) while windows that end before its rows are
    replayed with the cache: each equals the replay through the view; then the whole log does."""
    spy = Spy(monkeypatch)
    monkeypatch.setattr(seg_layout, "MATURE_S", 0.0)
    policy = log / "policy-routing.yaml"
    ts = load_window(str(log)).arrow("ts").to_pylist()
    until = ts[-1]
    plain = replayed(policy, log, False, monkeypatch, until=until)
    writer = LogWriter(log, flush_ms=3_600_000, journal=False)
    stop = threading.Event()
    later = ts[-1].timestamp() + 60

    def write() -> None:
        i = 0
        while not stop.is_set() and i < 40 * 50:
            for _ in range(50):
                writer.append(_record(i, later + i))
                i += 1
            writer.flush()

    t = threading.Thread(target=write)
    t.start()
    try:
        seen = set()
        deadline = time.monotonic() + 120
        while t.is_alive() and time.monotonic() < deadline:
            cached = replayed(policy, log, True, monkeypatch, until=until)
            assert spy.last()["served"]
            assert_same(cached, plain)
            seen.add(spy.last()["tail"] + spy.last()["written"])
    finally:
        stop.set()
        t.join(timeout=60)
        writer.close()
    assert len(seen) > 1 or max(seen) > 0, "no replay ran while segments appeared"
    whole_plain = replayed(policy, log, False, monkeypatch)
    whole = replayed(policy, log, True, monkeypatch)
    assert spy.last()["served"] and len(whole_plain.decisions) > 9_000
    assert_same(whole, whole_plain)


def test_a_merge_between_two_replays(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge of the log's segments between two replays: the second reads the merged segment
    (its own cache entry), the entries of the merged inputs are removed once they are deleted."""
    spy = Spy(monkeypatch)
    monkeypatch.setattr(seg_layout, "MATURE_S", 0.0)
    policy = log / "policy-live.yaml"
    first = replayed(policy, log, True, monkeypatch)
    entries = {p.name for p in (log / "replay-cache").iterdir()}
    writer = LogWriter(log, flush_ms=3_600_000, journal=False)
    ts = load_window(str(log)).arrow("ts").to_pylist()
    for i in range(30):  # the 16th flush: a merge
        writer.append(_record(i, ts[-1].timestamp() + 1 + i))
    writer.flush()
    with writer._merge_lock:
        writer._compact_locked()
    writer.close()
    merged = [s for s in seg_layout.list_segments(seg_layout.log_dir(log)) if s.lo < s.hi]
    assert merged, "no merge happened"
    plain = replayed(policy, log, False, monkeypatch)
    again = replayed(policy, log, True, monkeypatch)
    assert spy.last()["served"] and spy.last()["written"] >= 1
    assert_same(again, plain)
    assert len(again.decisions) == len(first.decisions) + 30
    assert any(e.startswith(merged[0].path.name) for e in (p.name for p in (log / "replay-cache").iterdir()))
    # the writer deletes the merged inputs GRACE_S later: their entries leave the cache at the next replay
    inputs = [s for s in seg_layout.list_segments(seg_layout.log_dir(log)) if 0 < s.lo == s.hi <= merged[0].hi]
    assert len(inputs) == 16
    for s in inputs:
        s.path.unlink()
    assert_same(replayed(policy, log, True, monkeypatch), plain)
    memos = (seg_layout.NAMES_MEMO, segment_cache.VERIFIED)  # open_log's memo of footers, the checked sums'
    kept = [p for p in (log / "replay-cache").iterdir() if p.name not in memos]
    left = {p.name.split(".parquet")[0] for p in kept}
    assert left == {
        s.path.name.split(".parquet")[0] for s in seg_layout.list_segments(seg_layout.log_dir(log)) if s.lo > 0
    }
    assert left < {e.split(".parquet")[0] for e in entries} | {merged[0].path.name.split(".parquet")[0]}
    # each entry kept its sums, and the pruned entries' sums went with them
    files = {p.name for p in kept}
    assert files == {f for f in files if f.endswith(".arrow")} | {f + ".sums" for f in files if f.endswith(".arrow")}
    # and the memo of checked sums names only entries that are there
    verified = orjson.loads((log / "replay-cache" / segment_cache.VERIFIED).read_bytes())
    assert verified and set(verified) <= {f for f in files if f.endswith(".arrow")}


def test_a_data_directory_reached_through_a_symlink(log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_log names the view's directory as given, llmgw_data_dir() resolved: through a symlink
    (a mounted volume's link) the cache was silently never used (warm = cold = off at 1M rows)."""
    link = tmp_path / "linked"
    link.symlink_to(log, target_is_directory=True)
    spy = Spy(monkeypatch)
    plain = replayed(log / "policy-routing.yaml", link, False, monkeypatch)
    replayed(log / "policy-routing.yaml", link, True, monkeypatch)
    warm = replayed(log / "policy-routing.yaml", link, True, monkeypatch)
    assert spy.last()["served"] and spy.last()["cached"] > 1, spy.stats
    assert len(list((log / "replay-cache").glob("*.arrow"))) > 1
    assert_same(warm, plain)


def test_turned_off_by_the_environment(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(segment_cache.ENV, "off")
    replay(log / "policy-routing.yaml", str(log))
    assert not (log / "replay-cache").exists()


def test_columns_read_by_another_rule_or_schema_are_read_again(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A column stored with another SQL expression than the window's now (a later release reads
    costs otherwise) is read from Parquet again, and every entry is another once the anchor (the
    log's schema) is rewritten."""
    spy = Spy(monkeypatch)
    load_window(str(log), prefetch=("cost_usd", "route"))  # cold
    assert spy.last()["written"] > 1
    real = window_mod._column
    monkeypatch.setattr(window_mod, "_column", lambda name: "0.5 AS cost_usd" if name == "cost_usd" else real(name))
    got = load_window(str(log), prefetch=("cost_usd", "route"))
    assert spy.last()["written"] == spy.stats[0]["written"]  # every segment read again
    assert set(got.numpy("cost_usd").tolist()) == {0.5}
    load_window(str(log), prefetch=("cost_usd", "route"))
    assert spy.last()["cached"] == spy.stats[0]["written"]  # and stored so
    anchor = seg_layout.log_dir(log) / seg_layout.ANCHOR_NAME
    os.utime(anchor, (time.time() + 5, time.time() + 5))  # as ensure_anchor's rewrite moves it
    load_window(str(log), prefetch=("cost_usd", "route"))
    assert spy.last()["written"] == spy.stats[0]["written"] and spy.last()["cached"] == 0
    assert len(list((log / "replay-cache").glob("seg-*.arrow"))) == spy.stats[0]["written"]  # the old entries pruned


def test_a_cache_that_cannot_be_written_is_skipped(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``LLMGW_REPLAY_CACHE=<dir>`` where nothing can be written: the segments are read from
    Parquet, the replay is the same, the data directory is left alone."""
    spy = Spy(monkeypatch)
    monkeypatch.setenv(segment_cache.ENV, "/dev/null/replay-cache")
    policy = log / "policy-routing.yaml"
    got = replay(policy, str(log))
    assert spy.last()["served"] and spy.last()["cached"] == 0
    monkeypatch.setenv(segment_cache.ENV, "off")
    assert_same(got, replay(policy, str(log)))
    assert not (log / "replay-cache").exists()


def test_a_warm_window_holds_the_cache_files_plain_columns_in_place(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm window's plain columns (ids, times, attempts, token counts, costs, sources) are the
    cache entries' own arrays — views of the mapped files, one chunk per segment — not
    concatenated into new memory (at 1M rows ~120 MB of fresh pages and a copy in a first call):
    Arrow's pool grows by far less than those columns while the window is read."""
    head = (*REPLAY_COLUMNS, "guardrails")
    load_window(str(log), prefetch=head)  # cold: writes the entries
    before = pa.total_allocated_bytes()
    w = load_window(str(log), prefetch=head)
    grown = pa.total_allocated_bytes() - before
    plain = sum(w.table.column(n).nbytes for n in w.table.column_names if n not in w.coded)
    assert plain > 400_000
    assert grown < plain // 10, (grown, plain)
    assert w.table.column("request_id").num_chunks >= 15  # a chunk (or more) per segment


def test_an_entrys_plain_columns_map_apart_from_its_codes(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain columns a warm window holds (views of the entry's file) come from a mapping of
    their own: the coded columns' codes, copied out while the window is read, leave theirs with
    them — with one mapping, the codes' pages read stayed resident as long as the window (at 1M
    rows ~40 MB of its peak)."""
    load_window(str(log), prefetch=(*REPLAY_COLUMNS, "guardrails"))  # cold: writes the entries
    entries = sorted((log / "replay-cache").glob("*.arrow"))
    assert entries
    for entry in entries:
        pieces = segment_cache._read(entry)
        plain = [p.array for p in pieces.values() if p.array is not None]
        codes = [p.codes for p in pieces.values() if p.codes is not None and len(p.codes)]
        assert plain and codes
        region = _mapping_of(codes[0].ctypes.data)  # the codes' mapping (/proc/self/maps)
        assert all(region[0] <= c.ctypes.data < region[1] for c in codes)
        for arr in plain:
            at = next(b.address for b in arr.buffers() if b is not None and b.size)
            assert not region[0] <= at < region[1], (entry.name, arr.type)  # not inside it


def _mapping_of(address: int) -> tuple[int, int]:
    """The [start, end) of this process's mapping holding ``address``."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= address < hi:
            return lo, hi
    raise AssertionError(f"{address:#x} is in no mapping")
