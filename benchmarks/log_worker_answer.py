"""How long the log worker takes to answer a flush (the wait its deadline bounds).

``segment_worker.answer_deadline_s`` gives each ``W`` request ``ANSWER_S`` plus ``ANSWER_S_PER_MB``
per MB of frames; at the deadline the server kills the worker as stuck (docs/log.md "the log
worker"). This measures the answers that deadline must never cut: on a copy of a log (``--log``,
e.g. the 1M-row log of 21 single-flush segments, whose first flush starts a 16-segment merge in the
worker), flushes of ``--rows`` rows with 4 KB bodies every ``--every`` s for ``--seconds``, then one
backlog of ``--backlog`` rows (as after an outage). Prints the first answer (the worker's start),
the steady answers' median and max, and the backlog's seconds per MB.

    .venv/bin/python benchmarks/log_worker_answer.py --log /tmp/h14p/log1m --copy-to /tmp/answer-bench
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from llmgw_kernel.log import RequestRecord, segment_worker
from llmgw_kernel.log.writer import LogWriter

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 4000 + b'"}]}'


def record(i: int) -> RequestRecord:
    rec = RequestRecord(f"bench_{i:08d}", 1_700_000_000.0 + i, "chat.completions")
    rec.route, rec.status, rec.outcome, rec.request_raw, rec.response_raw = "m", 200, "ok", BODY, BODY
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", type=Path, required=True, help="data directory to copy (its log/requests)")
    ap.add_argument("--copy-to", type=Path, required=True, help="scratch directory (replaced)")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--every", type=float, default=0.2)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--backlog", type=int, default=10_000)
    args = ap.parse_args()
    shutil.rmtree(args.copy_to, ignore_errors=True)
    shutil.copytree(args.log, args.copy_to)
    answers: list[tuple[float, int]] = []  # (seconds, bytes of frames)
    write = segment_worker.WorkerProcess.write

    def timed(self: segment_worker.WorkerProcess, frames: list[bytes]) -> dict[str, Any]:
        started = time.monotonic()
        reply = write(self, frames)
        answers.append((time.monotonic() - started, sum(map(len, frames))))
        return reply

    segment_worker.WorkerProcess.write = timed  # type: ignore[method-assign]
    writer = LogWriter(args.copy_to, flush_ms=600_000, worker_process=True)
    n, started = 0, time.monotonic()
    while time.monotonic() - started < args.seconds:
        for _ in range(args.rows):
            writer.append(record(n))
            n += 1
        writer.flush()
        time.sleep(args.every)
    for _ in range(args.backlog):
        writer.append(record(n))
        n += 1
    writer.flush()
    writer.close()
    first, steady, backlog = answers[0], sorted(answers[1:-1]), answers[-1]
    print(
        f"first answer (worker start) {first[0]:.2f} s; steady ({len(steady)} flushes of {args.rows} rows, "
        f"{steady[-1][1] / 1e6:.1f} MB): median {steady[len(steady) // 2][0]:.3f} s, max {steady[-1][0]:.2f} s; "
        f"backlog {args.backlog} rows {backlog[1] / 1e6:.1f} MB: {backlog[0]:.2f} s "
        f"({backlog[0] / (backlog[1] / 1e6):.3f} s/MB)"
    )


if __name__ == "__main__":
    main()
