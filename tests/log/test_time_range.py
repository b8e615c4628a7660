"""The log holds times in 1970-01-01 .. 2100-01-01 (log/schema.py TS_MIN, TS_MAX).

A record whose ``ts`` lies beyond what DuckDB's TIMESTAMPTZ holds (epoch 1e300) used to make
every flush fail ("log flush failed (2 rows kept in memory)"): the batch was split down to the
bad row, which was "stripped" but kept its ``ts``, so the stripped row failed too and every
row buffered with it stayed in memory. Now ``append`` refuses such a record before journaling
it, and a record that reaches a flush anyway (an older process's journal) is written with the
time NULL, so the other rows always land.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log import journal as wal


def record(rid: str, ts: float | None = None, ts_end: float | None = None) -> RequestRecord:
    rec = RequestRecord(rid, time.time() if ts is None else ts, "chat.completions")
    rec.route, rec.status, rec.outcome, rec.ts_end = "m", 200, "ok", ts_end
    return rec


def ids(data_dir) -> dict[str, tuple]:
    con = open_log(data_dir)
    try:
        return {r[0]: r[1:] for r in con.sql("SELECT request_id, ts, ts_end, metadata FROM requests").fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize(
    ("ts", "ts_end"),
    [(1e300, None), (-99999999999.0, None), (math.nan, None), (-1.0, None), (4_102_444_800.0, None), (None, 1e300)],
    ids=["ts-1e300", "ts-year-1199", "ts-nan", "ts-before-1970", "ts-2100", "ts_end-1e300"],
)
def test_append_refuses_a_time_out_of_range_and_the_rest_land(tmp_path, ts, ts_end) -> None:
    w = LogWriter(tmp_path, flush_ms=60000)
    try:
        w.append(record("good-1"))
        with pytest.raises(ValueError, match="bad.*1970-01-01 .. 2100-01-01"):
            w.append(record("bad", ts, ts_end))
        w.append(record("good-2"))
        journaled = [
            r.request_id for _, p in wal.journal_files(wal.journal_dir(tmp_path)) for r in wal.decode(p.read_bytes())[0]
        ]
        assert journaled == ["good-1", "good-2"]  # nothing of "bad" was journaled
        w.flush()
        assert w.healthy and w.buffered == 0, w.last_error
    finally:
        w.close()
    assert set(ids(tmp_path)) == {"good-1", "good-2"}


def test_a_journaled_record_out_of_range_is_written_with_null_times(tmp_path) -> None:
    """An older process journaled a record with ts 1e300 (no check then): recovery writes every
    record, the bad one with NULL times and the reason in metadata, and deletes the journal."""
    jdir = wal.journal_dir(tmp_path)
    journal = wal.Journal(jdir, 1)
    for rec in (record("good-1"), record("bad", 1e300, 1e300), record("good-2")):
        journal.append(wal.encode(rec))
    journal.close()
    w = LogWriter(tmp_path, flush_ms=60000)
    try:
        assert w.healthy and w.buffered == 0, w.last_error
        assert w.rows_recovered == 3 and w.rows_stripped == 1
    finally:
        w.close()
    got = ids(tmp_path)
    assert set(got) == {"good-1", "good-2", "bad"}
    assert got["bad"][:2] == (None, None)
    assert "row refused by the segment writer" in json.loads(got["bad"][2])["llmgw_unserializable"]
    assert got["good-1"][0] is not None
    assert not list(jdir.glob("*"))
