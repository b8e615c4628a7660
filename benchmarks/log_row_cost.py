"""What a log row costs in Python, part by part (CPU µs per row, in one thread).

The writer turns each request's record into a row (:func:`llmgw_kernel.log.record.to_row`:
the bodies parsed, two SHA-256 hashes of canonical encodings, the row's dict) and the row into
a JSON line (:func:`~llmgw_kernel.log.record.encode_row`), which DuckDB writes as Parquet with
the GIL released. On the event loop the proxy encodes the journal frame
(:func:`llmgw_kernel.log.journal.encode`). This prints each part's cost for a small ``demo``
exchange and for 4 KB request and response bodies (best of ``--repeat`` × ``--rows``
rows, thread CPU time), so that the time can be put where it goes.

``--flush-rows N`` also times whole flushes of N such rows (4 KB bodies) through a real
writer, in process (``LogWriter``: the flushing thread encodes and has DuckDB write the
segment) and through the worker process the server uses (``worker_process=True``: the
flushing thread only sends the journal frames), alternately ``--repeat`` times: wall seconds,
CPU seconds of the flushing thread and of the worker process, rows per second.

    .venv/bin/python benchmarks/log_row_cost.py
    .venv/bin/python benchmarks/log_row_cost.py --flush-rows 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable

import orjson
from log_writer_gil import bodies, record
from procstat import cpu_seconds

from llmgw_kernel.log import journal as wal
from llmgw_kernel.log.record import _sorted_json, canonical_request_bytes, encode_row, to_row
from llmgw_kernel.log.writer import LogWriter, encode_records

DEMO_REQUEST = b'{"model":"demo","messages":[{"role":"user","content":"how fast is this gateway?"}]}'
DEMO_RESPONSE = orjson.dumps({
    "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "demo",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "demo answer"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
})  # fmt: skip


def best_us(fn: Callable[[], object], rows: int, repeat: int) -> float:
    """Best thread CPU µs per call of ``fn`` over ``repeat`` runs of ``rows`` calls."""
    out = []
    for _ in range(repeat):
        t0 = time.thread_time()
        for _ in range(rows):
            fn()
        out.append((time.thread_time() - t0) / rows * 1e6)
    return min(out)


def parts(request: bytes, response: bytes) -> dict[str, Callable[[], object]]:
    rec = record(1, request, response)
    row = to_row(rec)
    req, resp = orjson.loads(request), orjson.loads(response)
    bare = {**row, "request_body": None, "response_body": None}
    return {
        "row + JSON line (writer, per row)": lambda: encode_records([rec]),
        "  to_row": lambda: to_row(rec),
        "    orjson.loads of both bodies": lambda: (orjson.loads(request), orjson.loads(response)),
        "    canonical request + SHA-256": lambda: hashlib.sha256(canonical_request_bytes(req)).hexdigest(),
        "    sorted response + SHA-256": lambda: hashlib.sha256(_sorted_json(resp)).hexdigest(),
        "  encode_row": lambda: encode_row(row),
        "    of which the row without bodies": lambda: orjson.dumps(bare),
        "journal frame (event loop, per row)": lambda: wal.encode(rec),
    }


def time_flush(rows: int, worker_process: bool) -> tuple[float, float, float]:
    """(wall s, flushing thread CPU s, worker process CPU s) of one flush of ``rows`` rows."""
    request, response = bodies(4)
    with tempfile.TemporaryDirectory() as d:
        writer = LogWriter(d, flush_ms=3_600_000, worker_process=worker_process)
        try:
            worker = writer._worker.pid if writer._worker is not None else None
            writer.append(record(0, request, response))
            writer.flush()  # start-up (the worker's imports, DuckDB's first COPY) is not the steady state
            for i in range(1, rows + 1):
                writer.append(record(i, request, response))
            kid0 = cpu_seconds(worker) if worker else 0.0
            t0, cpu0 = time.perf_counter(), time.thread_time()
            writer.flush()
            wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
            kid = cpu_seconds(worker) - kid0 if worker else 0.0
            assert writer.rows_written == rows + 1 and writer.last_error is None
        finally:
            writer.close()
    return wall, cpu, kid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--flush-rows", type=int, default=0, help="also time whole flushes of this many rows")
    args = ap.parse_args()
    cases = {"demo": (DEMO_REQUEST, DEMO_RESPONSE), "4 KB bodies": bodies(4)}
    print("| part | " + " | ".join(f"{name} µs" for name in cases) + " |")
    print("|---|" + "---:|" * len(cases))
    measured = {name: parts(*pair) for name, pair in cases.items()}
    for label in next(iter(measured.values())):
        cells = [f"{best_us(measured[name][label], args.rows, args.repeat):.2f}" for name in cases]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.flush_rows:
        head = "wall s | flushing thread CPU s | worker CPU s | rows/s"
        print(f"\n| flush of {args.flush_rows:,} rows (4 KB bodies) | {head} |")
        print("|---|---:|---:|---:|---:|")
        for run in range(args.repeat):
            for worker_process in (False, True):
                wall, cpu, kid = time_flush(args.flush_rows, worker_process)
                name = "worker process" if worker_process else "in process"
                rate = args.flush_rows / wall
                print(f"| {name} (run {run + 1}) | {wall:.2f} | {cpu:.2f} | {kid:.2f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
