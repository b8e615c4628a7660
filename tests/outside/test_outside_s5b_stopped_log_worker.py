"""Outside-style: the server's log worker process stops answering (SIGSTOP, a stuck disk, swapped out).

docs/log.md: the server's rows are written by a child process, the log worker; "A worker that dies is
replaced at the next flush (its rows stay buffered and journaled meanwhile, and `/health` reports the
failed flush)". kill -9 of the worker under traffic holds up (checked by hand: 14 kills in 6 s, 7,814
answered requests, 7,814 distinct rows, /health 503 while it fails, 200 after).

A worker that is alive but does not answer was another matter (found by SIGSTOP of the worker alone):
- the proxy keeps answering (good), but `/health` stays 200 with no reason while `last_flush_age_s`
  grows past 30 s and every row stays in memory: the server's writer thread waits on the worker's
  reply with no timeout (segment_worker.WorkerProcess.write: readline), so no flush ever fails;
- SIGTERM then never ends the server (still running 90 s later, --drain-timeout 5): LogWriter.close
  joins the writer thread for 30 s, then waits for the lock that thread holds while it waits on the
  worker, forever. An orchestrator SIGKILLs it after its grace period (the journal keeps the rows),
  but a rolling deploy stalls on every such pod.
Fixed: each wait on the worker has a deadline (segment_worker.answer_deadline_s); at it the worker is
killed and the flush fails (rows kept, /health 503 with the reason), and a new worker takes the rows.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port

from llmgw_kernel import open_log
from llmgw_kernel.log.segment_worker import ANSWER_S

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


class _Server:
    def __init__(self, tmp: Path) -> None:
        (tmp / "live.yaml").write_text(yaml.safe_dump(POLICY))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.stopped: list[int] = []  # worker pids this test sent SIGSTOP
        self._out = open(tmp / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--port", self.url.rsplit(":", 1)[1],
             "--policy", str(tmp / "live.yaml"), "--data-dir", str(tmp / "data"), "--drain-timeout", "5"],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (tmp / "serve.log").read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def chat(self, text: str) -> int:
        body = {"model": "demo", "messages": [{"role": "user", "content": text}]}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, timeout=10).status_code

    def worker(self) -> int:
        """The pid of the server's log worker (its child running segment_worker)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
            )
            pids = [int(line.split()[0]) for line in out.stdout.splitlines() if "segment_worker" in line]
            if pids:
                return pids[0]
            time.sleep(0.2)
        raise AssertionError("no log worker process")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(tmp_path)
    try:
        yield srv
    finally:
        for pid in srv.stopped:  # only the worker this test stopped, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        srv._out.close()


def _stop_worker(srv: _Server) -> int:
    for i in range(3):
        assert srv.chat(f"before {i}") == 200
    time.sleep(1.5)  # the worker has answered its first flush
    pid = srv.worker()
    os.kill(pid, signal.SIGSTOP)
    srv.stopped.append(pid)
    for i in range(20):
        assert srv.chat(f"while stopped {i}") == 200  # the proxy does not block on the worker
    return pid


def _logged(tmp: Path) -> int:
    con = open_log(tmp / "data")
    try:
        return con.execute("SELECT count(DISTINCT request_id) FROM requests").fetchone()[0]
    finally:
        con.close()


def test_health_reports_a_log_worker_that_stopped_answering(server: _Server, tmp_path: Path) -> None:
    """The flush waiting on the stopped worker fails at its deadline with the rows kept; the worker
    is killed, a new one writes every row. /health answers 503 only from that failure to the new
    worker's first write — often under a second, shorter than this loop's period on a fast machine
    (CI missed it) — so the failure is read where it stays: ``log.flush_errors`` and
    ``log.last_flush_error``, which name the worker."""
    stopped = _stop_worker(server)
    deadline = time.monotonic() + ANSWER_S + 30
    report: dict = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{server.url}/health", timeout=5)
        report = health.json()
        if health.status_code == 503:
            assert report["log"]["buffered"] >= 20, report  # the rows are kept while it fails
            assert any(f"log worker {stopped} did not answer" in r for r in report["reasons"]), report
        if report["log"]["flush_errors"] >= 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no failed flush {ANSWER_S + 30:.0f} s after the log worker stopped: {report}")
    failure = report["log"]["last_flush_error"]
    assert re.search(rf"log worker {stopped} did not answer a write of \d+ rows", failure["reason"]), report
    assert 0 <= failure["age_s"] < 30, report
    deadline = time.monotonic() + 60
    while (health := httpx.get(f"{server.url}/health", timeout=5)).status_code != 200:
        assert time.monotonic() < deadline, "/health never recovered once the stopped worker was replaced"
        time.sleep(0.2)
    assert health.json()["log"]["last_flush_error"]["reason"] == failure["reason"]  # kept once healed
    assert httpx.get(f"{server.url}/health", timeout=5).json()["log"]["buffered"] == 0
    assert server.worker() != stopped
    assert subprocess.run(["ps", "-p", str(stopped)], capture_output=True).returncode != 0, "not killed and reaped"
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    assert _logged(tmp_path) == 23


def test_sigterm_ends_a_server_whose_log_worker_stopped_answering(server: _Server, tmp_path: Path) -> None:
    _stop_worker(server)
    server.proc.send_signal(signal.SIGTERM)
    bound = 5 + ANSWER_S + 15  # --drain-timeout, the running flush's deadline, a new worker's last flush
    try:
        server.proc.wait(bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"llmgw serve still running {bound:.0f} s after SIGTERM (its log worker is stopped)")
    assert _logged(tmp_path) == 23  # the last flush's new worker wrote the rows the stopped one held
