"""Outside-style: the request log's compaction when rows are large (long names, logged bodies).

By hand (a gateway that logged ~4,000 requests carrying 8,000-character team and user names —
before names were bounded; bodies logged in full, as `log.bodies: full` does with any large
prompt, or an imported log): every compaction pass failed with DuckDB's "Out of Memory Error:
failed to pin block of size 256.0 KiB (244.1 MiB/244.1 MiB used)" and was retried every few
seconds, a traceback each time, the segments never merged. The merge wrote one Parquet row group
of up to 122,880 rows, all held in the writer's 256 MB. Expected: the merge bounded by bytes per
row group; the rows merged and all read back.
"""

from __future__ import annotations

import time

from llmgw_kernel.log import LogWriter, RequestRecord, open_log
from llmgw_kernel.log.segments import list_segments, log_dir, split_live
from llmgw_kernel.log.writer import FANOUT

ROWS = 256  # per segment: FANOUT segments of ~40 KB rows, ~160 MB together


def _record(i: int) -> RequestRecord:
    rec = RequestRecord(f"req_{i:06d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome, rec.plan = "m", 200, "ok", ("a/x",)
    name = f"{i:06d}".ljust(8000, "n")
    rec.team, rec.end_user = name, name
    rec.request_raw = b'{"model":"m","user":"%s","messages":[{"role":"user","content":"%s"}]}' % (
        name.encode(),
        (f"{i} " * 8000).encode(),
    )
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    rec.usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return rec


def test_segments_of_large_rows_merge(tmp_path) -> None:
    w = LogWriter(tmp_path, flush_ms=60000, worker_process=False)
    try:
        for s in range(FANOUT):
            for i in range(ROWS):
                w.append(_record(s * ROWS + i))
            w.flush()
        w._compact_locked()  # the compactor thread's pass (it logged and retried what this raised)
        live, superseded = split_live([s for s in list_segments(log_dir(tmp_path)) if s.lo > 0])
        assert len(superseded) == FANOUT and len(live) == 1, (live, superseded)
    finally:
        w.close()
    con = open_log(tmp_path)
    n = FANOUT * ROWS
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (n, n)
