"""Outside-style: `llmgw replay` over a window that holds no row of the log.

By hand: `llmgw replay --policy live.yaml --data-dir d --since 2099-01-01` (or a `--since/--until`
before the log began, or a typo'd year) printed a full summary of zeros — `requests: 0`, `cost_usd:
0.0`, `compare_to_log: 0` — and exit 0 with nothing to say that the window missed the log: read
quickly (or by a script comparing cost_usd) it is "the candidate costs nothing". Expected: the
summary as before (scripts read it) plus one line on stderr naming the window and where the log's
rows are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_POLICY

from llmgw_kernel import load_policy
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    live = tmp_path / "live.yaml"
    live.write_text(yaml.safe_dump(DEMO_POLICY))
    policy, writer, now = load_policy(live), LogWriter(tmp_path / "data", journal=False), time.time()
    for i in range(5):
        rec = RequestRecord(f"req_{i:05d}", now - 60 + i, "chat.completions")
        rec.route, rec.policy_version, rec.status, rec.outcome = "demo", policy.version, 200, "ok"
        rec.ts_end = now - 59 + i
        writer.append(rec)
    writer.close()
    return tmp_path


def _replay(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", "live.yaml", "--data-dir", "data", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    "window",
    [
        ("--since", "2099-01-01"),
        ("--since", "2020-01-01", "--until", "2020-01-02"),
        ("--as-served", "--since", "2099-01-01"),
    ],
)
def test_an_empty_window_is_said(logged: Path, window: tuple[str, ...]) -> None:
    done = _replay(logged, *window, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["requests"] == 0
    said = [line for line in done.stderr.splitlines() if "no request" in line]
    assert len(said) == 1 and said[0].startswith("llmgw replay: no request logged in the window"), done.stderr
    assert "the log holds 5 requests from " in said[0], said


def test_a_window_with_rows_says_nothing_of_the_kind(logged: Path) -> None:
    done = _replay(logged, "--since", "1h")
    assert done.returncode == 0 and "no request" not in done.stderr, done.stderr
