"""Outside-style: `llmgw policy promote CAND --data-dir /nonexistent`.

By hand (found at the end of last stop): promote with a mistyped `--data-dir` promoted the candidate
and printed `no forecast recorded (no request logged in /nonexistent over the last 7d)` (exit 0): the
operator who asked for a forecast got a live policy without one, and a message that hides the typo.
`llmgw forecast check` refuses the same mistake (exit 2, "... does not exist"). Expected: the same
usage error, nothing promoted, nothing archived. Without `--data-dir` (the default `llmgw-data`,
absent before the first `llmgw serve`) promote still works and records no forecast
(tests/policy/test_promote_forecast.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_POLICY


def _llmgw(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


@pytest.mark.parametrize("where", ["missing", "a-file"])
def test_promote_with_a_data_dir_that_is_not_one_is_refused(tmp_path: Path, where: str) -> None:
    live, cand = tmp_path / "live.yaml", tmp_path / "cand.yaml"
    live.write_text(yaml.safe_dump(DEMO_POLICY))
    cand.write_text(yaml.safe_dump({**DEMO_POLICY, "log": {"flush_ms": 123}}))
    before = live.read_bytes()
    (tmp_path / "a-file").write_text("not a directory")
    target = tmp_path / where
    done = _llmgw(tmp_path, "policy", "promote", str(cand), "--policy", str(live), "--data-dir", str(target))
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith(f"llmgw policy promote: --data-dir {target} "), done.stderr
    assert "promoted" not in done.stdout and "no forecast recorded" not in done.stdout, done.stdout
    assert live.read_bytes() == before, "the candidate was promoted"
    assert not (tmp_path / "history").exists(), "the live version was archived"
