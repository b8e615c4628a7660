"""Outside-style: a disk that filled while `llmgw serve` ran, then got some space back.

docs/log.md: "A failed write (disk full, permissions) keeps the rows in memory (up to 1M) and retries at
the next flush; `/health` answers 503 with the error meanwhile". Retried, but as one piece: every flush
wrote the whole backlog as one uncompressed JSON-lines temporary file before DuckDB turned it into a
(zstd) segment. By hand: a 12 MB tmpfs filled under 4 clients; once the filler was deleted the log
worker's `.seg-…jsonl.tmp` of 5,253 buffered rows (11.9 MB) filled the disk again itself, every flush,
and `/health` stayed 503 for good — the backlog's segment would have taken a tenth of that. On a real
disk an operator who frees less than the backlog's uncompressed size (1M rows of 4 KB: 4 GB) never
gets the log back, and the backlog only grows while traffic goes on.

Expected: the backlog is written in bounded pieces, so the log catches up with what space there is.
Needs root to mount a small tmpfs (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import health_or_none, logged_counts, serve_demo, sigterm_and_wait, tmpfs, until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
    "log": {"flush_ms": 100},
}
DISK_MB = 24
ROWS = 400  # each ~ 2 x 40 KB of JSON: ~ 34 MB of backlog, more than the disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", f"{DISK_MB}m") as mount:
        yield mount


def test_a_backlog_larger_than_the_space_freed_is_written_in_pieces(tmp_path: Path, small_disk: Path) -> None:

    data = small_disk / "data"
    server, url = serve_demo(tmp_path, data, POLICY)
    try:
        until("the server is up", lambda: (h := health_or_none(url)) is not None and h.status_code == 200, 60)
        filler = small_disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        ids = []
        with httpx.Client(timeout=30) as client:
            for i in range(ROWS):
                body = {"model": "demo", "messages": [{"role": "user", "content": f"{i} " + "z" * 40_000}]}
                answer = client.post(f"{url}/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text
                ids.append(answer.headers["x-request-id"])
        health = until(
            "a failed flush", lambda: (h := health_or_none(url)) is not None and h.status_code == 503 and h, 60
        )
        assert "No space left on device" in " ".join(health.json()["reasons"])
        filler.unlink()  # all the disk back: less than the backlog's JSON, more than its segments
        # 200 once a flush works again; rows answered while that flush ran wait for the next one (in
        # the full suite a 200 came with 82 rows buffered, 0.1 s before they were written): wait for both
        until(
            "the log written again, every row",
            lambda: (
                (h := health_or_none(url)) is not None and h.status_code == 200 and h.json()["log"]["buffered"] == 0
            ),
            90,
        )
        counts = logged_counts(data)
        assert sorted(counts) == sorted(ids)
        assert set(counts.values()) == {1}
    finally:
        sigterm_and_wait(server, 30)
