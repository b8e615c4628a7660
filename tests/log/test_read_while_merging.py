"""Reading never fails while the writer merges and deletes segments (issue 10, item 10).

The writer here flushes, merges (FANOUT 2) and deletes superseded segments (GRACE 0.3 s) as
fast as it can, while readers query ``open_log`` in a loop. Before the fix ~1% of queries
failed with "Cannot open file" (the view's glob listed a superseded segment and DuckDB opened
it after the writer had deleted it). Now DuckDB prunes every segment a query does not read
before opening any, and a segment is deleted only GRACE_S after no new query reads it.
Every query must also see each row exactly once, and every row flushed before it started.
"""

from __future__ import annotations

import threading
import time

import pytest

from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log import segments as seg_layout
from llmgw_kernel.log import writer as writer_mod

RUN_S = 6.0


def record(i: int) -> RequestRecord:
    rec = RequestRecord(f"req_{i:06d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome = "m", 200, "ok"
    rec.request_raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    return rec


@pytest.fixture
def fast_merges(monkeypatch):
    monkeypatch.setattr(writer_mod, "FANOUT", 2)
    monkeypatch.setattr(writer_mod, "GRACE_S", 0.3)
    monkeypatch.setattr(seg_layout, "MATURE_S", 0.1, raising=False)


def test_queries_never_fail_while_segments_are_merged_and_deleted(tmp_path, fast_merges):
    w = LogWriter(tmp_path, flush_ms=60000)
    state = {"flushed": 0, "appended": 0, "deleted": 0}
    stop = threading.Event()
    failures: list[str] = []
    wrong: list[str] = []
    queries = [0]

    def write() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(3):
                w.append(record(n))
                n += 1
            state["appended"] = n
            w.flush()
            state["flushed"] = n
            with w._lock:
                before = len(list((tmp_path / "log" / "requests").glob("seg-*")))
                w._compact_locked()
                w._collect_garbage()
                state["deleted"] += max(0, before - len(list((tmp_path / "log" / "requests").glob("seg-*"))))

    def read() -> None:
        con = open_log(tmp_path)
        while not stop.is_set():
            lo = state["flushed"]
            try:
                total, distinct = con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone()
            except Exception as exc:  # noqa: BLE001 - every failure is the defect
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            hi = state["appended"]
            queries[0] += 1
            if total != distinct or not lo <= total <= hi:
                wrong.append(f"rows={total} distinct={distinct} flushed-before={lo} appended-after={hi}")
        con.close()

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(RUN_S)
    stop.set()
    for t in threads:
        t.join(30)
    w.close()
    assert state["deleted"] > 20, state  # the writer really merged and deleted under the readers
    assert queries[0] > 100, queries
    assert not failures, f"{len(failures)} of {queries[0] + len(failures)} queries failed: {failures[:3]}"
    assert not wrong, f"{len(wrong)} of {queries[0]} queries saw wrong rows: {wrong[:3]}"


def test_visibility_rule_reads_each_range_once():
    """The rule itself: a merged segment replaces its inputs exactly when it matures."""
    from pathlib import Path

    def seg(lo: int, hi: int) -> seg_layout.Segment:
        return seg_layout.Segment(lo, hi, Path(seg_layout.segment_name(lo, hi)))

    files = [(seg(0, 0), 0.0), (seg(1, 1), 0.0), (seg(2, 2), 0.0), (seg(1, 2), 100.0), (seg(3, 3), 100.5)]
    names = {f"{s.lo}-{s.hi}" for s, _ in files}
    assert len(names) == 5

    def pick(now: float) -> list[tuple[int, int]]:
        chosen = seg_layout.visible(files, now, mature_s=5.0)
        return sorted((s.lo, s.hi) for s, _ in files if s.path.name in chosen)

    assert pick(102.0) == [(0, 0), (1, 1), (2, 2), (3, 3)]  # the merge is too young: its inputs
    assert pick(105.0) == [(0, 0), (1, 2), (3, 3)]  # mature: the merge instead of its inputs
    without_inputs = [f for f in files if f[0].lo == f[0].hi or f[0].lo == 0]
    files[:] = [f for f in files if not (f[0].lo == f[0].hi and f[0].lo in (1, 2))]
    assert pick(102.0) == [(0, 0), (1, 2), (3, 3)]  # inputs gone (another tool's file): read it
    assert without_inputs
