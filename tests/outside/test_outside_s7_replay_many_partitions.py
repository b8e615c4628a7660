"""Outside-style: `llmgw replay --engine local --partitions 100000` on a small log.

docs/replay-distributed.md: the window is split into at most N partitions of independent groups
of requests. By hand, on a 312-row log whose requests are all independent (no cache, no budget),
`--partitions 100000` made 312 partitions — 312 whole replays, each compiling the policy and
reading its window in a worker process — and ran 81 s (35 s of CPU) for what one process
replays in 1 s. A partition is a fixed cost: the plan now makes at most one per 1,000 requests
(at least 8, so a small log still splits), and says so in `partitioning.notes`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ask_demo, logged_counts, serve_demo, sigterm_and_wait, until


def test_partitions_are_bounded_by_the_log_size(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server, url = serve_demo(tmp_path, data)
    try:
        until("the demo server answers", lambda: _up(url), timeout=120, every=0.1)
        ids = [ask_demo(url, f"question {i}") for i in range(40)]
    finally:
        assert sigterm_and_wait(server, 60) == 0
    assert all(logged_counts(data)[rid] == 1 for rid in ids)
    done = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(tmp_path / "live.yaml"), "--data-dir",
         str(data), "--engine", "local", "--partitions", "100000", "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    part = summary["partitioning"]
    assert summary["requests"] == 40 and summary["compare_to_log"] == 0
    assert part["partitions"] == 8, part
    assert any("at most 8 partitions" in note for note in part["notes"]), part["notes"]


def _up(url: str) -> bool:
    from conftest import health_or_none

    answer = health_or_none(url)
    return answer is not None and answer.status_code == 200
