"""The writer encodes a flush in chunks and hands the GIL over between them (issue 14).

Encoding 1,000 rows with 4 KB bodies in one go held the GIL for ~75 ms of CPU; the proxy's
event loop waited behind it. These tests observe the hand-overs through ``_yield_gil`` (the
one call between chunks) and count the rows encoded before each: not timed, so they cannot
pass or fail by the machine's load.
"""

from __future__ import annotations

import time

import pytest

import llmgw_kernel.log.writer as writer
from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log import journal as wal


def record(i: int) -> RequestRecord:
    rec = RequestRecord(f"req_{i:05d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome = "m", 200, "ok"
    rec.request_raw = b'{"model":"m","messages":[{"role":"user","content":"hi %d"}]}' % i
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    return rec


@pytest.fixture
def handovers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows encoded (by the real ``_line``) before each GIL hand-over, in order."""
    encoded = [0]
    seen: list[int] = []
    real_line = writer._line

    def counting_line(rec: RequestRecord) -> bytes:
        encoded[0] += 1
        return real_line(rec)

    monkeypatch.setattr(writer, "_line", counting_line)
    monkeypatch.setattr(writer, "_yield_gil", lambda: seen.append(encoded[0]))
    return seen


def _assert_chunks(seen: list[int], n: int, k: int) -> None:
    marks = [0, *seen, n]
    assert all(0 < b - a <= k for a, b in zip(marks, marks[1:], strict=False)), marks
    assert len(seen) == (n - 1) // k  # no hand-over before the first chunk or after the last


@pytest.mark.parametrize(("n", "k"), [(100, 32), (50, 7), (7, 7), (1, 32)])
def test_a_flush_of_n_rows_is_encoded_in_chunks_of_at_most_k(tmp_path, monkeypatch, handovers, n, k):
    monkeypatch.setattr(writer, "ENCODE_CHUNK", k)
    w = LogWriter(tmp_path, flush_ms=60000)
    for i in range(n):
        w.append(record(i))
    w.flush()
    _assert_chunks(handovers, n, k)
    w.close()
    ids = [r[0] for r in open_log(tmp_path).sql("SELECT request_id FROM requests ORDER BY 1").fetchall()]
    assert ids == [f"req_{i:05d}" for i in range(n)]  # every row written once, none lost in a chunk seam


def test_the_default_chunk_is_small(handovers, tmp_path):
    """1,000 rows (2k req/s at flush_ms 500) are encoded with the GIL handed over every ≤64 rows."""
    assert 1 <= writer.ENCODE_CHUNK <= 64
    w = LogWriter(tmp_path, flush_ms=60000, journal=False)
    for i in range(1000):
        w.append(record(i))
    w.flush()
    w.close()
    _assert_chunks(handovers, 1000, writer.ENCODE_CHUNK)


def test_journal_recovery_is_encoded_in_chunks_too(tmp_path, monkeypatch, handovers):
    monkeypatch.setattr(writer, "ENCODE_CHUNK", 10)
    jdir = wal.journal_dir(tmp_path)
    jdir.mkdir(parents=True)
    (jdir / wal.journal_name(1, 0)).write_bytes(b"".join(wal.encode(record(i)) for i in range(45)))
    w = LogWriter(tmp_path)
    assert w.rows_recovered == 45
    _assert_chunks(handovers, 45, 10)
    w.close()
    assert open_log(tmp_path).execute("SELECT count(DISTINCT request_id) FROM requests").fetchone() == (45,)


def test_a_bad_row_in_a_chunk_keeps_the_others(tmp_path, monkeypatch, handovers):
    """A record whose row cannot be built is written with its scalar columns, mid-chunk."""
    monkeypatch.setattr(writer, "ENCODE_CHUNK", 4)
    w = LogWriter(tmp_path, flush_ms=60000, journal=False)
    for i in range(10):
        rec = record(i)
        if i == 5:
            rec.embedding = object()  # .tolist() fails in to_row
        w.append(rec)
    w.flush()
    w.close()
    _assert_chunks(handovers, 10, 4)
    con = open_log(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (10, 10)
