"""Several writers (replicas) on one data directory: each its own series of segments and its
own journal; readers see every row of every replica exactly once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from llmgw_kernel.datadir import claim_replica, try_claim
from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log import journal as wal
from llmgw_kernel.log.replicas import adopt_orphans
from llmgw_kernel.log.segments import Segment, list_segments, log_dir, segment_name, split_live, visible
from llmgw_kernel.log.writer import FANOUT


def record(name: str, i: int) -> RequestRecord:
    rec = RequestRecord(f"req_{name}_{i:05d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome, rec.plan = "m", 200, "ok", ("a/x",)
    rec.request_raw = b'{"model":"m","messages":[{"role":"user","content":"hi %d"}]}' % i
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    return rec


def test_segment_names_carry_the_replica_and_sort_after_the_anchor():
    name = segment_name(1, 2, "gw-7-0")
    assert name == "seg-gw-7-0-0000000000000001-0000000000000002.parquet"
    assert sorted([name, segment_name(0, 0)])[0] == segment_name(0, 0)  # the anchor's schema is read first
    assert Segment(1, 2, log_dir("x") / name).replica == "gw-7-0"
    assert Segment(1, 2, log_dir("x") / segment_name(1, 2)).replica == ""
    for bad in ("7gw", "Gw", "gw_1", "a" * 64):
        with pytest.raises(ValueError):
            segment_name(1, 1, bad)


def test_ranges_of_different_replicas_never_supersede_each_other():
    wide = Segment(1, 16, log_dir("x") / segment_name(1, 16, "a-0"))
    other = Segment(3, 3, log_dir("x") / segment_name(3, 3, "b-0"))
    own = Segment(3, 3, log_dir("x") / segment_name(3, 3, "a-0"))
    live, superseded = split_live([wide, other, own])
    assert superseded == [own] and other in live
    shown = visible([(wide, 0.0), (other, 0.0), (own, 0.0)], now=100.0)
    assert shown == {wide.path.name, other.path.name}


def test_two_replicas_write_merge_and_read_as_one_table(tmp_path):
    a = LogWriter(tmp_path, flush_ms=60000, replica="gw-a-0")
    b = LogWriter(tmp_path, flush_ms=60000, replica="gw-b-0")
    n = FANOUT + 3
    for i in range(n):  # interleaved in time, one segment per row and replica
        a.append(record("a", i))
        a.flush()
        b.append(record("b", i))
        b.flush()
    a._compact_locked()  # a merges only its own series
    segs = [s for s in list_segments(log_dir(tmp_path)) if s.lo > 0]
    assert {s.replica for s in segs} == {"gw-a-0", "gw-b-0"}
    assert [s.span for s in segs if s.replica == "gw-a-0" and s.span > 1] == [FANOUT]
    assert all(s.span == 1 for s in segs if s.replica == "gw-b-0")
    assert a._seq == b._seq == n + 1  # each numbers its own series
    a.close()
    b.close()
    con = open_log(tmp_path)
    rows = con.execute("SELECT request_id FROM requests ORDER BY ts").fetchall()
    assert len(rows) == len({r[0] for r in rows}) == 2 * n
    assert [r[0] for r in rows[:4]] == ["req_a_00000", "req_b_00000", "req_a_00001", "req_b_00001"]


def test_a_writer_restarted_under_its_id_continues_its_own_series(tmp_path):
    a = LogWriter(tmp_path, replica="gw-a-0")
    a.append(record("a", 1))
    a.close()
    b = LogWriter(tmp_path, replica="gw-b-0")
    assert b._seq == 1
    b.close()
    a = LogWriter(tmp_path, replica="gw-a-0")
    assert a._seq == 2
    a.close()


def _crash(tmp_path, replica: str, rows: int) -> None:
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_replicas import record
        from llmgw_kernel.log import LogWriter
        w = LogWriter({str(tmp_path)!r}, flush_ms=60000, replica={replica!r})
        for i in range({rows}):
            w.append(record({replica!r}, i))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr


def test_kill_9_of_one_replica_loses_nothing_and_touches_no_other(tmp_path):
    other = LogWriter(tmp_path, flush_ms=60000, replica="gw-b-0")
    other.append(record("b", 0))  # journaled, not flushed: the other replica's journal
    _crash(tmp_path, "gw-a-0", 50)
    assert wal.journal_files(wal.journal_dir(tmp_path, "gw-a-0"))
    again = LogWriter(tmp_path, flush_ms=60000, replica="gw-a-0")
    assert again.rows_recovered == 50
    assert wal.journal_files(wal.journal_dir(tmp_path, "gw-b-0"))  # not folded by another replica's start
    again.close()
    other.close()
    con = open_log(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (51, 51)


def test_a_journal_whose_replica_never_returns_is_adopted_only_once_it_is_free(tmp_path):
    _crash(tmp_path, "gw-gone-0", 30)  # e.g. a Deployment pod replaced under another name
    _crash(tmp_path, "gw-alive-0", 5)
    held = try_claim(tmp_path, "gw-alive-0")  # a running replica holds its id
    assert held is not None
    holder = subprocess.Popen(  # the claim must be another process's: flock is per open file
        [sys.executable, "-c", "import sys,time; time.sleep(60)"], pass_fds=(held._fd,)
    )
    held.release()
    try:
        me = claim_replica(tmp_path, "gw-new-0")
        assert adopt_orphans(tmp_path, me.id) == 30
        assert not wal.journal_files(wal.journal_dir(tmp_path, "gw-gone-0"))
        assert wal.journal_files(wal.journal_dir(tmp_path, "gw-alive-0"))  # its owner still runs
        assert any(s.replica == "gw-gone-0" for s in list_segments(log_dir(tmp_path)))
    finally:
        holder.kill()
        holder.wait()
    assert adopt_orphans(tmp_path, me.id) == 5  # now free: adopted
    rows = open_log(tmp_path).execute("SELECT count(DISTINCT request_id) FROM requests").fetchone()
    assert rows == (35,)


def test_a_single_servers_journal_is_adopted_by_a_replica(tmp_path):
    _crash(tmp_path, "", 3)  # a server that ran alone on the directory, killed
    assert adopt_orphans(tmp_path, "gw-a-0") == 3
    assert not wal.journal_files(wal.journal_dir(tmp_path))
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (3,)


def test_a_replica_leaves_other_replicas_temporary_files_alone(tmp_path):
    directory = log_dir(tmp_path)
    directory.mkdir(parents=True)
    theirs = directory / f".{segment_name(4, 4, 'gw-b-0')}.jsonl.tmp"
    mine = directory / f".{segment_name(4, 4, 'gw-a-0')}.tmp"
    theirs.write_bytes(b"x")
    mine.write_bytes(b"x")
    LogWriter(tmp_path, journal=False, replica="gw-a-0").close()
    assert theirs.exists() and not mine.exists()


def test_servers_with_shared_state_hold_the_directory_together_and_others_are_refused(tmp_path):
    from llmgw_kernel.datadir import DataDirLock, DataDirLocked, holder_of

    a = DataDirLock(tmp_path, "llmgw serve on :1", shared=True).acquire()
    b = DataDirLock(tmp_path, "llmgw serve on :2", shared=True).acquire()  # replicas: both hold it
    with pytest.raises(DataDirLocked):
        DataDirLock(tmp_path, "llmgw serve on :3").acquire()  # a server without shared state
    holder = holder_of(tmp_path)  # what `llmgw keys rotate-master` asks: replicas count
    assert holder is not None and holder.get("shared") is True
    a.release()
    assert holder_of(tmp_path) is not None  # b still holds it
    b.release()
    assert holder_of(tmp_path) is None
    alone = DataDirLock(tmp_path, "llmgw serve on :3").acquire()
    with pytest.raises(DataDirLocked):
        DataDirLock(tmp_path, "llmgw serve on :4", shared=True).acquire()
    alone.release()


def test_a_parquet_copy_of_several_replicas_is_read_once_per_row():
    from llmgw_kernel.replay.sources import dedupe_segments

    names = [
        segment_name(1, 16, "a-0"),
        segment_name(1, 1, "a-0"),
        segment_name(1, 1, "b-0"),
        segment_name(2, 2, "b-0"),
    ]
    assert dedupe_segments(names) == sorted(
        [segment_name(1, 16, "a-0"), segment_name(1, 1, "b-0"), segment_name(2, 2, "b-0")]
    )
