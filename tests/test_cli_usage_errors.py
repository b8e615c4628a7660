"""Arguments the CLI cannot act on are usage errors (exit 2, a line naming the argument), never a
silent no-op or a misleading answer: a count below 1 (``replay --partitions 0``, ``traffic -n -5``,
which printed "sent -5 requests") and ``forecast check`` on a data directory that does not exist
(which said "no forecast recorded" instead of naming the directory)."""

from __future__ import annotations

import os
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


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(policy_for("http://127.0.0.1:9/v1")))
    (tmp_path / "data" / "log" / "requests").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["replay", "--policy", "live.yaml", "--data-dir", "data", "--partitions", "0"], "--partitions"),
        (["replay", "--policy", "live.yaml", "--data-dir", "data", "--partitions", "-3"], "--partitions"),
        (["traffic", "--policy", "live.yaml", "--data-dir", "data", "-n", "-5"], "-n"),
        (["traffic", "--policy", "live.yaml", "--data-dir", "data", "-n", "0"], "-n"),
    ],
    ids=["partitions-0", "partitions-negative", "traffic-n-negative", "traffic-n-0"],
)
def test_a_count_below_one_is_a_usage_error(workdir: Path, args: list[str], named: str) -> None:
    out = _llmgw(*args, cwd=workdir)
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert f"argument {named}" in out.stderr and "at least 1" in out.stderr, out.stderr
    assert "sent" not in out.stdout and "Traceback" not in out.stderr


def test_forecast_check_names_a_missing_data_directory(workdir: Path) -> None:
    missing = workdir / "no-such-data"
    out = _llmgw("forecast", "check", "--policy", "live.yaml", "--data-dir", str(missing), cwd=workdir)
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert f"{missing} does not exist" in out.stderr, out.stderr
    assert "no forecast" not in out.stderr


def test_serve_refuses_a_log_level_it_does_not_know(workdir: Path) -> None:
    """``--log-level nope`` was accepted and ran the server at info: a typo (``--log-level degub``)
    silently left the operator without the lines asked for."""
    out = _llmgw("serve", "--policy", "live.yaml", "--data-dir", "data", "--log-level", "nope", cwd=workdir)
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert "argument --log-level" in out.stderr and "'nope'" in out.stderr, out.stderr


@pytest.mark.parametrize("value", ["99999", "0", "http"])
def test_traffic_refuses_a_traffic_port_variable_that_is_not_a_port(workdir: Path, value: str) -> None:
    """``LLMGW_TRAFFIC_PORT=99999`` bound 34463 (the OS takes ports modulo 65536), ``=http`` was
    ignored for a random port: the port-forward set up for it then reached nothing."""
    env = {**os.environ, "LLMGW_TRAFFIC_PORT": value}
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "traffic", "--policy", "live.yaml", "--data-dir", "data", "-n", "1"],
        capture_output=True, text=True, cwd=workdir, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert f"LLMGW_TRAFFIC_PORT={value!r}: a port number, 1 to 65535" in out.stderr, out.stderr
    assert "sent" not in out.stdout and "Traceback" not in out.stderr
