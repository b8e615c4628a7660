"""The log's ``guardrails`` column through the real journal and writer: a crash's journal
written before the column existed still loads, verdicts survive the journal, old segments
gain the column, and ``bodies: redacted`` keeps bodies."""

from __future__ import annotations

import struct
import time
import zlib

import orjson

from llmgw_kernel import open_log
from llmgw_kernel.log import journal as wal
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter

VERDICTS = [{"stage": "input", "name": "input[0]:pii", "rule": "pii.phone.vn", "type": "PHONE_NUMBER",
             "action": "redact", "count": 2, "score": 0.95}]  # fmt: skip


def record(i: int, body_mode: str = "full") -> RequestRecord:
    rec = RequestRecord(f"req_{i:04d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome, rec.body_mode = "m", 200, "ok", body_mode
    rec.request_raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "<PHONE_NUMBER_1>"}]})
    rec.response_raw = b'{"choices": []}'
    return rec


def framed(magic: int, body: bytes) -> bytes:
    return struct.pack("<III", magic, len(body), zlib.crc32(body)) + body


def test_a_journal_written_before_the_guardrails_field_loads_after_the_upgrade(tmp_path):
    """The previous release's layout frame names every field but ``guardrails``; its records
    decode by that layout, the new field at its default (None)."""
    before = tuple(n for n in wal._PLAIN if n != "guardrails")
    frames = [framed(wal.LAYOUT_MAGIC, orjson.dumps(before))]
    for i in range(5):
        rec = record(i)
        header = orjson.dumps(
            ([getattr(rec, n) for n in before], [len(rec.request_raw), len(rec.response_raw), None, -1])
        )
        frames.append(framed(wal.MAGIC, struct.pack("<I", len(header)) + header + rec.request_raw + rec.response_raw))
    directory = wal.journal_dir(tmp_path)
    directory.mkdir(parents=True)
    (directory / wal.journal_name(0, 0)).write_bytes(b"".join(frames))
    records, skipped = wal.decode((directory / wal.journal_name(0, 0)).read_bytes())
    assert skipped == 0 and [r.guardrails for r in records] == [None] * 5
    w = LogWriter(tmp_path)
    assert w.rows_recovered == 5
    w.close()
    got = open_log(tmp_path).execute("SELECT count(*), count(guardrails) FROM requests").fetchone()
    assert got == (5, 0)


def test_verdicts_survive_the_journal_and_reach_the_column(tmp_path):
    rec = record(1, "redacted")
    rec.guardrails = VERDICTS
    (back,), _ = wal.decode(wal.layout_frame() + wal.encode(rec))
    assert back.guardrails == VERDICTS
    w = LogWriter(tmp_path)
    w.append(rec)
    w.append(record(2))
    w.close()
    con = open_log(tmp_path)
    rows = con.execute(
        "SELECT request_id, body_mode, request_body->'$.messages[0].content' AS content, response_body IS NOT NULL, "
        "guardrails FROM requests ORDER BY request_id"
    ).fetchall()
    assert rows[0][:4] == ("req_0001", "redacted", '"<PHONE_NUMBER_1>"', True)  # redacted mode keeps bodies
    assert rows[0][4] == VERDICTS and rows[1][4] is None
    per_type = con.execute(
        "SELECT g.type, g.action, sum(g.count) FROM (SELECT unnest(guardrails) AS g FROM requests) GROUP BY ALL"
    ).fetchall()
    assert per_type == [("PHONE_NUMBER", "redact", 2)]
