"""Outside-style: `llmgw serve --port` out of range.

README: `llmgw serve [--host H] [--port P] ...`; a bad flag is a one-line usage error (exit 2) before
anything starts (tests/test_cli_usage_errors.py). By hand: `llmgw serve --port 99999` logged
`llmgw serving on http://127.0.0.1:99999` and `Uvicorn running on http://127.0.0.1:99999` while it
listened on 34463 (99999 modulo 65536): an operator, a health check or a load balancer pointed at
the port the server names finds nothing there. The same flag of `llmgw traffic`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "0", "http"])
@pytest.mark.parametrize("command", ["serve", "traffic"])
def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path, command: str, port: str) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--port", port]
    if command == "serve":
        args += ["--no-dashboards", "--policy", str(tmp_path / "live.yaml")]
    else:
        args += ["--policy", str(tmp_path / "live.yaml"), "-n", "1"]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "llmgw_kernel", command, *args],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:  # it started serving on some other port
        pytest.fail(f"llmgw {command} --port {port} ran instead of refusing: {exc.stderr!r}")
    assert done.returncode == 2, done
    assert "a port number, 1 to 65535" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
