"""Outside-style: the log worker killed after it wrote a segment, before it answered the server.

docs/log.md: "A worker that dies is replaced at the next flush (its rows stay buffered and journaled
meanwhile ...)"; a worker that does not answer within its deadline "is SIGKILLed ... and a new worker
takes the rows at the next flush"; tests/log/test_crash_live.py's promise: every answered request in
the log, "none twice".

By hand: `llmgw serve` under 6 concurrent clients (flush_ms 50), the log worker kill -9'd every
1.5-3 s for 90 s (35 kills): 19,072 answered requests, 20,392 rows — 1,320 rows twice. The server
keeps a flush's frames until the worker answers; a worker that has renamed the flush's segment into
place but dies (kill -9, the OOM killer, or the server's own SIGKILL at the answer deadline: a worker
swapped out or on a slow disk that finished its write late) before its answer reaches the server
leaves those rows in a segment *and* in the server's buffer, and the next worker writes them again.
Replay, the dashboards and the budget rebuild then count those requests (and their cost) twice.

Made deterministic here with strace: the worker's next rename() (the flush's segment going into
place) is delayed on its way out, so the segment is on disk and the answer is not sent; the worker is
then killed. Needs strace and ptrace (skipped otherwise; .ci/run installs strace).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import ask_demo, health_or_none, log_worker_of, logged_counts, serve_demo, sigterm_and_wait, until

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


def _segments(data: Path) -> set[Path]:
    return set((data / "log" / "requests").glob("seg-*.parquet"))


def _log(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()["log"]


def test_rows_a_killed_worker_wrote_but_did_not_acknowledge_are_logged_once(tmp_path: Path) -> None:

    data = tmp_path / "data"
    server, url = serve_demo(tmp_path, data, POLICY)
    tracer: subprocess.Popen | None = None
    try:
        until("the server is up", lambda: (h := health_or_none(url)) is not None and h.status_code == 200)
        ids = [ask_demo(url, "first")]
        until("the first row is written", lambda: _log(url)["rows_written"] == 1)
        worker = log_worker_of(server)
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(worker), "-e", "trace=rename,renameat,renameat2",
             "-e", "inject=rename,renameat,renameat2:delay_exit=120000000:when=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.0)  # attached (ptrace takes effect at once; strace's start is the wait)
        if tracer.poll() is not None:
            pytest.skip(f"strace cannot attach: {tracer.stderr.read().decode() if tracer.stderr else ''}")
        before = _segments(data)
        ids += [ask_demo(url, f"while the worker writes {i}") for i in range(5)]
        # the flush's segment is in place; the worker sits in its rename, its answer unsent
        until("the flush's segment is renamed into place", lambda: _segments(data) - before)
        assert _log(url)["buffered"] == 5
        os.kill(worker, signal.SIGKILL)
        tracer.kill()
        tracer.wait(10)
        tracer = None
        until("a new worker wrote the buffered rows", lambda: _log(url)["buffered"] == 0)
        assert log_worker_of(server) != worker
        counts = logged_counts(data)
        assert {i: counts[i] for i in ids} == {i: 1 for i in ids}
        assert sum(counts.values()) == len(ids)
    finally:
        if tracer is not None:
            tracer.kill()
            tracer.wait(10)
        sigterm_and_wait(server, 30)
