"""Outside-style: `llmgw serve` on an address it cannot listen on.

By hand: `llmgw serve --host 999.1.1.1 --port 18765` logged `llmgw serving on http://999.1.1.1:18765`,
started the whole application (log worker, caches), then uvicorn logged `[Errno -2] Name or
service not known` — a line that names neither the host nor the flag — and the process exited 3 s
later. A port another process holds did the same with `[Errno 98]`. An operator (or a supervisor
reading the log) is told the gateway serves where it never listened. Now: one line naming the
address and the OS's reason, exit status 1, and no `serving on`, before the application starts.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_POLICY, free_port


def _serve(tmp_path: Path, host: str, port: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    try:
        return subprocess.run(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--host", host, "--port", str(port), "--no-dashboards",
             "--policy", str(tmp_path / "live.yaml"), "--data-dir", str(tmp_path / "data"), "--drain-timeout", "2"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:  # it serves somewhere
        pytest.fail(f"llmgw serve --host {host} --port {port} kept running: {exc.stderr!r}")


def _assert_refused(done: subprocess.CompletedProcess[str], where: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert f"llmgw: cannot listen on {where}:" in done.stderr, out[-3000:]
    assert "serving on" not in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "Application startup" not in out, out[-3000:]  # refused before the application started


def test_a_host_that_does_not_resolve(tmp_path: Path) -> None:
    port = free_port()
    _assert_refused(_serve(tmp_path, "999.1.1.1", port), f"999.1.1.1:{port}")


def test_a_port_another_process_listens_on(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        _assert_refused(_serve(tmp_path, "127.0.0.1", port), f"127.0.0.1:{port}")
