"""Outside-style: restarting `llmgw serve` on a data directory whose disk is full.

docs/log.md: "A failed write (disk full, permissions) keeps the rows in memory (up to 1M) and retries at
the next flush; `/health` answers 503 with the error meanwhile"; README.md: `GET /health` "503 with
`reasons` when not (draining, log not writable)"; docs/monitoring.md: the `LlmgwLogNotWritable` alert.
While it runs, a full disk is handled so (checked by hand: 503 "request log cannot be written: ... No space
left on device", every row written once space is back).

A restart while the disk is full (a pod rescheduled, a crash, a deploy) never gets there: `llmgw serve`
exits 1 with a Python traceback from `datadir.py: acquire` (`os.pwrite` of the lock holder's pid:
`OSError: [Errno 28] No space left on device`) — a crash loop with no message an operator is told about.
Expected: the server starts and reports the log as not writable (503 with the reason), or at least exits
with a one-line message naming the data directory and the error, not a traceback.

Needs root to mount a small tmpfs (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port, sigterm_and_wait, tmpfs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def _serve(tmp: Path, data: Path, out) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", str(tmp / "live.yaml"),
         "--data-dir", str(data), "--drain-timeout", "5"],
        stdout=out, stderr=subprocess.STDOUT, cwd=tmp,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def _wait_live(proc: subprocess.Popen, url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def test_a_restart_on_a_full_disk_reports_the_log_as_not_writable(tmp_path: Path, small_disk: Path) -> None:
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(POLICY))
    data = small_disk / "data"
    first, url = _serve(tmp_path, data, subprocess.DEVNULL)
    assert _wait_live(first, url)
    for _ in range(5):
        httpx.post(f"{url}/v1/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "x"}]})
    assert sigterm_and_wait(first, 30) == 0
    with open(small_disk / "filler", "wb") as filler:  # the disk fills while the gateway is down
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
    with open(tmp_path / "second.log", "wb") as out:
        second, url = _serve(tmp_path, data, out)
        try:
            live = _wait_live(second, url)
            health = httpx.get(f"{url}/health", timeout=5) if live else None
        finally:
            code = sigterm_and_wait(second, 30)
    output = (tmp_path / "second.log").read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
    if live:
        assert health is not None and health.status_code == 503, health and health.text
        assert "No space left" in " ".join(health.json()["reasons"])
    else:
        assert code != 0 and "No space left" in output and str(data) in output, output[-3000:]
