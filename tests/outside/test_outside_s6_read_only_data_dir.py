"""Outside-style: the data directory turns read-only under a running `llmgw serve` (a volume remounted
read-only after I/O errors, a storage failover), then writable again.

docs/log.md: "A failed write (disk full, permissions) keeps the rows in memory ... and retries at the
next flush; `/health` answers 503 with the error meanwhile"; a journal write that fails "does not stop
the request or its row (it still reaches a segment), but `/health` answers 503".

By hand (a read-only bind mount over the data directory, 30 requests answered 200 meanwhile, then the
mount removed): `/health` stayed 200 with `buffered: 0` and no flush error, the server's output had a
`log writer pass failed` traceback per flush (`journal.rotate`: `OSError: [Errno 30] Read-only file
system` opening the next journal file), and after the directory was writable again none of the 30
requests was ever in the log. The flush had taken the rows out of its buffer before the rotation
raised, so each failed pass dropped its rows, silently as far as /health is concerned.

Needs root for the bind mount (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import ask_demo, health_or_none, logged_counts, serve_demo, sigterm_and_wait, until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
    "log": {"flush_ms": 100},
}


def test_rows_answered_while_the_data_dir_is_read_only_are_kept_and_health_says_so(tmp_path: Path) -> None:

    data = tmp_path / "data"
    server, url = serve_demo(tmp_path, data, POLICY)
    mounted = False
    try:
        until("the server is up", lambda: (h := health_or_none(url)) is not None and h.status_code == 200, 60)
        ids = [ask_demo(url, f"before {i}") for i in range(5)]
        until("the first rows are written", lambda: health_or_none(url).json()["log"]["rows_written"] == 5, 30)  # type: ignore[union-attr]
        bind = subprocess.run(["mount", "--bind", str(data), str(data)], capture_output=True)
        if bind.returncode != 0:
            pytest.skip(f"cannot bind-mount: {bind.stderr.decode()}")
        mounted = True
        subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True, capture_output=True)
        ids += [ask_demo(url, f"read-only {i}") for i in range(10)]
        health = until("/health 503", lambda: (h := health_or_none(url)) is not None and h.status_code == 503 and h, 30)
        assert "Read-only file system" in " ".join(health.json()["reasons"]), health.json()
        subprocess.run(["umount", str(data)], check=True, capture_output=True)
        mounted = False
        until("/health 200 again", lambda: (h := health_or_none(url)) is not None and h.status_code == 200, 60)
        until("nothing buffered", lambda: health_or_none(url).json()["log"]["buffered"] == 0, 30)  # type: ignore[union-attr]
        ids += [ask_demo(url, f"after {i}") for i in range(3)]
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(data)], capture_output=True)
        sigterm_and_wait(server, 30)
    counts = logged_counts(data)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
    assert "log writer pass failed" not in (tmp_path / "serve.log").read_text(errors="replace")
