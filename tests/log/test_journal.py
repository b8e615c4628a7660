"""The write-ahead journal (issue 10, item 5): records survive a crash of the writing process,
a torn last record is skipped, nothing is written twice, the journal stays bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np

from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log import journal as wal
from llmgw_kernel.log.record import to_row


def record(i: int) -> RequestRecord:
    rec = RequestRecord(f"req_{i:05d}", 1700000000.0 + i, "chat.completions")
    rec.route, rec.status, rec.outcome, rec.plan, rec.target = "m", 200, "ok", ("a/x", "b/y"), "a/x"
    rec.request_raw = b'{"model":"m","messages":[{"role":"user","content":"hi %d"}]}' % i
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    rec.usage = {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    rec.metadata = {"team": "a", "n": i}
    rec.attempts = [{"target": "a/x", "status": 200, "latency_ms": 1.5, "error": None}]
    rec.cost_usd, rec.budget_flags = 0.001, ["team:a"]
    return rec


def test_a_record_round_trips_exactly():
    rec = record(1)
    rec.stream_events = [b'{"choices":[{"delta":{"content":"a"}}]}', b'{"choices":[{"delta":{"content":"b"}}]}']
    rec.response_raw = None
    rec.embedding = np.arange(8, dtype=np.float32) / 3
    rec.cache_features = {"numbers": [1, 2], "tokens": [123456789]}
    (back,), torn = wal.decode(wal.encode(rec))
    assert torn == 0
    assert to_row(back) == to_row(rec)
    assert back.plan == ("a/x", "b/y") and back.embedding.dtype == np.float32


def test_an_unserialisable_field_is_journaled_as_a_marker():
    rec = record(2)
    deep: object = 1
    for _ in range(300):
        deep = {"a": deep}
    rec.metadata = deep  # type: ignore[assignment]
    (back,), _ = wal.decode(wal.encode(rec))
    assert "llmgw_unserializable" in back.metadata and back.request_id == rec.request_id


def test_a_torn_tail_is_skipped_and_the_rest_recovered(tmp_path):
    jdir = wal.journal_dir(tmp_path)
    jdir.mkdir(parents=True)
    frames = b"".join(wal.encode(record(i)) for i in range(5))
    torn = wal.encode(record(99))
    (jdir / wal.journal_name(1, 0)).write_bytes(frames + torn[: len(torn) // 2])
    w = LogWriter(tmp_path)
    assert w.rows_recovered == 5
    w.close()
    ids = [r[0] for r in open_log(tmp_path).sql("SELECT request_id FROM requests ORDER BY 1").fetchall()]
    assert ids == [f"req_{i:05d}" for i in range(5)]
    assert wal.journal_files(jdir) == []


def _crash_after(tmp_path, code: str) -> None:
    """Run ``code`` in a process holding a LogWriter ``w``, then kill it with SIGKILL."""
    script = (
        textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_journal import record
        from llmgw_kernel.log import LogWriter
        w = LogWriter({str(tmp_path)!r}, flush_ms=60000)
    """)
        + textwrap.dedent(code)
        + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr


def test_kill_9_loses_no_appended_row(tmp_path):
    _crash_after(tmp_path, "for i in range(200): w.append(record(i))\n")
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (0,)  # nothing flushed
    w = LogWriter(tmp_path)
    assert w.rows_recovered == 200
    w.close()
    con = open_log(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (200, 200)


def test_a_crash_between_segment_and_journal_deletion_writes_nothing_twice(tmp_path):
    _crash_after(
        tmp_path,
        """
        import shutil
        from llmgw_kernel.log import journal as wal
        for i in range(50): w.append(record(i))
        path = w._journal.path
        shutil.copy(path, str(path) + ".keep")
        w.flush()  # the rows are in a segment and the journal file is deleted ...
        shutil.move(str(path) + ".keep", path)  # ... as if the crash came just before that
        for i in range(50, 60): w.append(record(i))
        """,
    )
    w = LogWriter(tmp_path)
    assert w.rows_recovered == 10
    w.close()
    con = open_log(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (60, 60)


def test_the_journal_is_truncated_once_its_rows_are_in_parquet(tmp_path):
    w = LogWriter(tmp_path, flush_ms=60000)
    jdir = wal.journal_dir(tmp_path)
    for round_ in range(5):
        for i in range(100):
            w.append(record(round_ * 100 + i))
        size = sum(p.stat().st_size for _, p in wal.journal_files(jdir))
        assert size > 100 * 100
        w.flush()
        files = wal.journal_files(jdir)
        assert len(files) == 1 and files[0][1].stat().st_size == len(wal.layout_frame())  # only the fresh file
    w.close()
    assert wal.journal_files(jdir) == []
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (500,)


def test_append_cost_is_small():
    """The event-loop part of journaling: encode + one os.write (the figure in docs/log.md comes
    from benchmarks/log_journal.py; this only guards against a regression by an order of magnitude)."""
    import os
    import tempfile

    rec = record(1)
    with tempfile.TemporaryDirectory() as d:
        j = wal.Journal(wal.journal_dir(d), 1)
        t0 = time.process_time()
        for _ in range(2000):
            j.append(wal.encode(rec))
        per = (time.process_time() - t0) / 2000
        os.close(j._fd)
    assert per < 500e-6, per


def test_a_partial_frame_in_the_middle_is_skipped_and_decoding_resumes():
    """A write that failed half-way (disk full) leaves a partial frame; the frames appended
    after it, once the disk had room again, are still recovered."""
    good = [wal.encode(record(i)) for i in range(4)]
    partial = wal.encode(record(99))[:40]
    recs, skipped = wal.decode(good[0] + good[1] + partial + good[2] + good[3])
    assert [r.request_id for r in recs] == ["req_00000", "req_00001", "req_00002", "req_00003"]
    assert skipped == 40


def test_a_journal_write_failure_is_reported_until_the_journal_works_again(tmp_path):
    import os

    w = LogWriter(tmp_path, flush_ms=60000)
    os.close(w._journal._fd)  # every write to the journal now fails (EBADF), as on a full disk
    w._journal._fd = os.open(w._journal.path, os.O_RDONLY)
    w.append(record(1))
    assert not w.healthy and w.last_error.startswith("journal: OSError")
    w.flush()  # the row still reaches its segment; the flush opens a new journal file
    w.append(record(2))
    assert w.healthy, w.last_error
    w.close()
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (2,)


def test_a_journal_still_full_at_its_last_flush_is_healthy_again_at_the_next_one_without_a_request(tmp_path):
    """The disk still full when the last rows' flush started the next journal file (its layout frame
    did not fit), then room again and no request after: ``last_error`` (``/health`` 503 "journal:
    No space left on device") stood for as long as no request came, though every row was in a
    segment (tests/outside/test_outside_s6_full_disk_backlog.py saw it through a real server). A
    flush retries the journal, records or not, until a new file's layout frame is written; while
    the disk refuses, no empty file is left per flush."""
    import os

    w = LogWriter(tmp_path, flush_ms=60000)
    jdir = w._journal.directory
    w.append(record(1))
    # the file the flush rotates to is on a full device: every write to it fails with ENOSPC
    os.symlink("/dev/full", jdir / wal.journal_name(w._seq, w._journal._n + 1))
    w.flush()
    assert w.buffered == 0 and not w.healthy and "No space left on device" in w.last_error
    # the refused file is not kept, and the one it goes on in was deleted with its rows in a segment
    assert list(jdir.iterdir()) == []
    w.flush()  # no new record: room again, the journal's next file is written
    assert w.healthy, w.last_error
    assert list(jdir.iterdir()) == [w._journal.path]
    assert wal.decode(w._journal.path.read_bytes()) == ([], 0) and w._journal.path.stat().st_size > 0
    w.append(record(2))
    w.close()
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (2,)


def _v1_frame(rec: RequestRecord) -> bytes:
    """A frame as the release before layout frames wrote it: its 55 plain fields, by position."""
    import struct
    import zlib

    import orjson

    v1 = wal._V1_LAYOUT  # the exact fields, in order, whatever fields later releases add
    values = [getattr(rec, name) for name in v1]
    lens = [len(rec.request_raw), len(rec.response_raw or b""), None, -1]
    header = orjson.dumps((values, lens))
    body = struct.pack("<I", len(header)) + header + rec.request_raw + (rec.response_raw or b"")
    return struct.pack("<III", wal.MAGIC, len(body), zlib.crc32(body)) + body


def test_a_journal_left_by_the_previous_release_is_recovered_after_an_upgrade(tmp_path):
    """Regression: adding record fields (reserved_prompt_tokens, cache_lookup_ts) changed the
    positional header, so a crash's journal written by the previous release failed to decode
    after an upgrade and its rows were dropped. Records now decode by the writer's layout."""
    directory = wal.journal_dir(tmp_path)
    directory.mkdir(parents=True)
    (directory / wal.journal_name(0, 0)).write_bytes(b"".join(_v1_frame(record(i)) for i in range(20)))
    w = LogWriter(tmp_path)
    assert w.rows_recovered == 20
    w.close()
    con = open_log(tmp_path)
    got = con.execute(
        "SELECT count(*), min(route), min(metadata->>'team'), max(reserved_prompt_tokens), max(cache_lookup_ts),"
        " min(route_draw), max(route_draw) FROM requests"
    ).fetchone()
    # that release drew weighted routes with the first draw (blake2b-64): replay must use it for these rows
    assert got == (20, "m", "a", None, None, 1, 1)


def test_each_journal_file_starts_with_its_layout_and_decodes_by_name(tmp_path):
    j = wal.Journal(tmp_path, 0)
    rec = record(1)
    rec.cache_lookup_ts, rec.reserved_prompt_tokens = 12.5, 7
    j.append(wal.encode(rec))
    path = j.close()
    data = path.read_bytes()
    assert data.startswith(wal.layout_frame())
    (decoded,), skipped = wal.decode(data)
    assert skipped == 0 and (decoded.cache_lookup_ts, decoded.reserved_prompt_tokens) == (12.5, 7)


def test_a_journal_opened_on_a_full_disk_reports_it_at_once_and_clears_on_the_next_good_write(tmp_path, caplog):
    """A server started on a full disk fails to write its journal's layout frame: that is reported
    at once (the writer's ``last_error``, so /health says 503 before any request), not only when
    the first request fails to journal; the next good write clears it."""
    import os

    jdir = tmp_path / "journal"
    jdir.mkdir()
    os.symlink("/dev/full", jdir / wal.journal_name(1, 0))  # every write to it fails: ENOSPC
    with caplog.at_level("ERROR", logger="llmgw.log"):
        j = wal.Journal(jdir, 1)
        j.append(wal.encode(record(1)))
    assert j.errors == 2
    assert j.last_error is not None and "No space left on device" in j.last_error
    assert j.last_error.startswith("OSError")
    assert sum("layout frame" in r.getMessage() for r in caplog.records) == 1  # logged once, counted each
    assert len(caplog.records) == 1
    old = j.rotate(2)  # a new file on a disk with room: its layout frame is written
    assert j.last_error is None and j.errors == 2
    j.append(wal.encode(record(2)))
    assert j.close() != old
    assert [r.request_id for r in wal.decode(j.path.read_bytes())[0]] == ["req_00002"]


def test_a_rotation_that_cannot_create_its_file_keeps_the_records_and_says_so(tmp_path):
    """A journal whose next file cannot be created (a read-only or full directory) goes on in the
    current file's descriptor and says why until a rotation works: ``rotate`` raised, and the writer had
    already taken the flush's rows from its buffer, so they were lost
    (tests/outside/test_outside_s6_read_only_data_dir.py: the same through a real server)."""
    journal = wal.Journal(tmp_path, 1)
    journal.append(wal.encode(record(0)))
    blocked = tmp_path / wal.journal_name(2, 1)
    blocked.mkdir()  # the next file's name is taken by a directory: os.open fails (EISDIR)
    first = journal.rotate(2)
    assert journal.stuck and journal.last_error is not None
    assert journal.last_error.startswith("cannot start a new journal file: IsADirectoryError")
    journal.append(wal.encode(record(1)))  # still journaled, into the current descriptor
    blocked.rmdir()
    assert journal.rotate(3) == first  # the file it went on in is the one finished now
    assert not journal.stuck and journal.last_error is None
    journal.append(wal.encode(record(2)))
    second = journal.close()
    assert [r.request_id for r in wal.decode(first.read_bytes())[0]] == [record(0).request_id, record(1).request_id]
    assert [r.request_id for r in wal.decode(second.read_bytes())[0]] == [record(2).request_id]
