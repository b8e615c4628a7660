"""Outside-style: `llmgw policy promote` and `llmgw forecast check` pointed at a live policy path that
is a directory, missing or not a policy.

By hand: `llmgw policy promote up.yaml --policy adir --data-dir d` ended in pathlib's
`IsADirectoryError: [Errno 21] Is a directory: 'adir'` traceback; `llmgw forecast check --policy
P --data-dir d` with P missing, a directory or broken YAML said `no forecast was recorded for the
live policy P (version None): promote it ...` (exit 1) — advice to promote, where the path is the
mistake. Expected (as `llmgw replay --policy` does): one line naming the path and why, no
traceback; for forecast check a usage error (exit 2).
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


def test_promote_onto_a_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cand.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    (tmp_path / "adir").mkdir()
    done = _llmgw(tmp_path, "policy", "promote", "cand.yaml", "--policy", "adir", "--data-dir", "data")
    assert done.returncode in (1, 2), done
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "adir" in done.stderr and "directory" in done.stderr, done.stderr
    assert (tmp_path / "adir").is_dir() and not any((tmp_path / "adir").iterdir())


@pytest.mark.parametrize("live", ["missing.yaml", "adir", "broken.yaml"])
def test_forecast_check_of_a_policy_that_does_not_load_names_it(tmp_path: Path, live: str) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "broken.yaml").write_text("routes: [1\n")
    (tmp_path / "data").mkdir()
    done = _llmgw(tmp_path, "forecast", "check", "--policy", live, "--data-dir", "data")
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "no forecast was recorded" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"llmgw forecast check: {live}: "), done.stderr
