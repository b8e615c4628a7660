"""Outside-style: a time or duration argument out of range is a usage error, never a traceback.

README.md, `llmgw replay`: "`T` is a UTC time (`2026-11-26T10:00:00Z`, `2026-11-26`) or a duration
back from now (`90m`, `36h`, `7d`)"; llmgw_kernel/timeparse.py promises "One clear ValueError for
anything else", and the CLI turns that into `llmgw replay: --since '...': expected ...` with exit 2
(as it does for `--since notadate`). A duration too large for a datetime escapes as an OverflowError
traceback with exit 1 instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import policy_for


def _llmgw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "--since", "99999999999d"],
        ["replay", "--since", "9999999d"],
        ["replay", "--until", "99999999999d"],
        ["policy", "promote", "cand.yaml", "--forecast-window", "99999999999d"],
        ["policy", "promote", "cand.yaml", "--forecast-window", "9999999d"],
    ],
    ids=[
        "since-int-overflow",
        "since-date-overflow",
        "until-int-overflow",
        "promote-forecast-window",
        "promote-forecast-window-date-overflow",
    ],
)
def test_out_of_range_duration_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    policy = yaml.safe_dump(policy_for("http://127.0.0.1:9/v1"))
    (tmp_path / "live.yaml").write_text(policy)
    (tmp_path / "cand.yaml").write_text(policy)
    data = tmp_path / "data"
    (data / "log").mkdir(parents=True)
    out = _llmgw(*args, "--policy", "live.yaml", "--data-dir", str(data), cwd=tmp_path)
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "duration" in out.stderr or "expected" in out.stderr, out.stderr
