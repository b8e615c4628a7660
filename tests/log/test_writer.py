"""The writer and reader in one process: segments, compaction, superseded files, restarts."""

from __future__ import annotations

import os
import time

from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log.segments import list_segments, log_dir, split_live
from llmgw_kernel.log.writer import FANOUT


def record(i: int) -> RequestRecord:
    rec = RequestRecord(f"req_{i:05d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome, rec.plan = "m", 200, "ok", ("a/x",)
    rec.request_raw = b'{"model":"m","messages":[{"role":"user","content":"hi %d"}]}' % i
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    rec.usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return rec


def test_flush_compaction_and_no_duplicates(tmp_path):
    w = LogWriter(tmp_path, flush_ms=60000)
    n = FANOUT * 2 + 3
    for i in range(n):
        w.append(record(i))
        w.flush()  # one segment per row
    w._compact_locked()
    live, superseded = split_live([s for s in list_segments(log_dir(tmp_path)) if s.lo > 0])
    assert len(superseded) == FANOUT * 2  # both full runs were merged
    assert len(live) == 2 + 3
    con = open_log(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (n, n)
    w.close()


def test_superseded_segments_are_deleted_after_grace(tmp_path, monkeypatch):
    import llmgw_kernel.log.segments as segments
    import llmgw_kernel.log.writer as writer

    monkeypatch.setattr(writer, "GRACE_S", 0.0)
    monkeypatch.setattr(segments, "MATURE_S", 0.0)
    w = LogWriter(tmp_path, flush_ms=60000)
    for i in range(FANOUT):
        w.append(record(i))
        w.flush()
    w._compact_locked()
    time.sleep(0.01)
    w._collect_garbage()
    names = [s.path.name for s in list_segments(log_dir(tmp_path)) if s.lo > 0]
    assert names == [f"seg-{1:016d}-{FANOUT:016d}.parquet"]
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (FANOUT,)
    w.close()


def test_restart_continues_the_sequence_and_keeps_rows(tmp_path):
    w = LogWriter(tmp_path)
    w.append(record(1))
    w.close()
    w = LogWriter(tmp_path)
    w.append(record(2))
    w.close()
    con = open_log(tmp_path)
    assert [r[0] for r in con.sql("SELECT request_id FROM requests ORDER BY request_id").fetchall()] == [
        "req_00001",
        "req_00002",
    ]


def test_body_modes(tmp_path):
    w = LogWriter(tmp_path)
    for i, mode in enumerate(("full", "hashed", "none")):
        rec = record(i)
        rec.body_mode = mode
        w.append(rec)
    w.close()
    rows = (
        open_log(tmp_path)
        .sql(
            "SELECT body_mode, request_body IS NOT NULL, request_hash IS NOT NULL, response_body IS NOT NULL FROM requests ORDER BY request_id"
        )
        .fetchall()
    )
    assert rows == [("full", True, True, True), ("hashed", False, True, False), ("none", False, False, False)]


def test_failed_flush_keeps_rows_and_reports(tmp_path):
    """A directory the writer may not write (as root, where permissions do not stop it: a file
    in the directory's place) fails the flush; the row is kept and written once it can be."""
    w = LogWriter(tmp_path, flush_ms=60000)
    w.append(record(1))
    directory = log_dir(tmp_path)
    moved = directory.with_name("requests.moved")
    os.chmod(directory, 0o500)
    as_root = os.access(directory, os.W_OK)
    if as_root:
        os.chmod(directory, 0o700)
        directory.rename(moved)
        directory.write_text("not a directory")
    try:
        w.flush()
        assert not w.healthy and w.buffered == 1
    finally:
        if as_root:
            directory.unlink()
            moved.rename(directory)
        os.chmod(directory, 0o700)
    w.flush()
    assert w.healthy and w.buffered == 0
    w.close()
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (1,)


def test_an_anchor_written_before_new_columns_is_upgraded(tmp_path, monkeypatch):
    """A data dir from an older release: its schema anchor lacks later columns; the writer
    rewrites it so every reader query can name every current column (NULL in old rows)."""
    import duckdb

    from llmgw_kernel.log import segments
    from llmgw_kernel.log.schema import COLUMNS

    directory = tmp_path / "log" / "requests"
    monkeypatch.setattr(segments, "COLUMNS", COLUMNS[:-3])
    segments.ensure_anchor(directory)
    monkeypatch.setattr(segments, "COLUMNS", COLUMNS)
    segments.ensure_anchor(directory)
    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{directory / segments.ANCHOR_NAME}')").fetchall()
    assert [r[0] for r in described] == [c[0] for c in COLUMNS]


def test_a_segment_lacking_columns_is_rewritten_and_read(tmp_path):
    """The view reads every segment with the anchor's schema (no union_by_name, which opened
    every file at bind); a segment from an older release or another tool that lacks columns
    is rewritten with them, keeping its rows and modification time."""
    import duckdb

    from llmgw_kernel.log import segments

    directory = log_dir(tmp_path)
    segments.ensure_anchor(directory)
    old = directory / segments.segment_name(7, 7)
    duckdb.sql(f"COPY (SELECT 'req_old' AS request_id, 200 AS status) TO '{old}' (FORMAT parquet)")
    os.utime(old, (1_000_000, 1_000_000))
    con = open_log(tmp_path)
    assert con.execute("SELECT request_id, status, route FROM requests").fetchall() == [("req_old", 200, None)]
    assert old.stat().st_mtime == 1_000_000
    w = LogWriter(tmp_path)  # the writer continues after it
    w.append(record(8))
    w.close()
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (2,)


def test_a_failing_merge_waits_and_holds_back_nothing(tmp_path, monkeypatch, caplog):
    """A run of segments whose merge fails (here its output path is taken by a directory) is
    tried again after a wait that doubles, one log line per failure — not at every compaction
    pass — and the other runs are merged meanwhile. Before, the first failure ended the pass
    (later runs never merged, superseded segments never deleted) and every pass, every second
    or so, tried it again and logged a traceback."""
    import logging

    import llmgw_kernel.log.writer as writer
    from llmgw_kernel.log.segments import segment_name

    monkeypatch.setattr(writer, "MERGE_RETRY_S", (0.4, 0.8), raising=False)
    w = LogWriter(tmp_path, flush_ms=60000)
    try:
        for i in range(FANOUT * 2):
            w.append(record(i))
            w.flush()
        blocker = log_dir(tmp_path) / f".{segment_name(1, FANOUT, '')}.tmp"
        blocker.mkdir()
        with caplog.at_level(logging.ERROR, logger="llmgw.log"):
            for _ in range(20):
                w._compact_locked()
        failed = [r for r in caplog.records if f"segments 1-{FANOUT} failed" in r.getMessage()]
        assert len(failed) == 1, [r.getMessage() for r in caplog.records]
        assert failed[0].exc_info is not None  # the first failure with its traceback
        live, superseded = split_live([s for s in list_segments(log_dir(tmp_path)) if s.lo > 0])
        assert sorted(s.lo for s in superseded) == list(range(FANOUT + 1, 2 * FANOUT + 1))  # the other run merged
        blocker.rmdir()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # tried again once its wait is over
            w._compact_locked()
            live, superseded = split_live([s for s in list_segments(log_dir(tmp_path)) if s.lo > 0])
            if len(superseded) == 2 * FANOUT:
                break
            time.sleep(0.05)
        assert [(s.lo, s.hi) for s in live] == [(1, FANOUT), (FANOUT + 1, 2 * FANOUT)]
        assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
    finally:
        w.close()
    con = open_log(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (2 * FANOUT,) * 2
