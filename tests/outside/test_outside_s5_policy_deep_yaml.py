"""Outside-style: a policy file nested too deeply for the YAML parser is an invalid policy, like any other.

README.md, `llmgw policy validate FILE...`: "one line per error, with its path ...; exit 1 on errors".
docs/policy.md: "The running server polls the live file ...; a change that validates is swapped in
atomically ..., an invalid one is refused with the reason in `/health` (`policy_reload_error`) and the
log, and the old policy keeps serving"; docs/monitoring.md: `llmgw_policy_reloads_total{result="invalid"}`
counts refused reloads.

A file of 5,000 nested flow sequences (`a: [[[[...]]]]`, 30 KB) makes PyYAML's recursive composer raise
`RecursionError`, which `load_policy` lets escape: `llmgw policy validate` prints a Python traceback, and
the server's watcher logs "policy watcher failed; will retry" with a traceback while `/health` reports no
reload error and the `invalid` counter does not move (an operator who broke the live file sees nothing).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import policy_reloads

DEEP_YAML = "a: " + "[" * 5000 + "]" * 5000 + "\n"


def test_validate_reports_a_too_deep_file_as_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(DEEP_YAML)
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "policy", "validate", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stdout + out.stderr, out.stderr[-2000:]
    assert str(path) in out.stdout + out.stderr


def test_hot_reload_of_a_too_deep_file_is_a_reported_reload_error(make_gateway) -> None:
    gw = make_gateway()
    version = httpx.get(f"{gw.url}/health").json()["policy_version"]
    invalid_before = policy_reloads(gw.url, "invalid")
    gw.policy_path.write_text(DEEP_YAML)
    deadline = time.monotonic() + 60
    report = httpx.get(f"{gw.url}/health").json()
    while report.get("policy_reload_error") is None and time.monotonic() < deadline:
        time.sleep(0.2)
        report = httpx.get(f"{gw.url}/health").json()
    # the old version keeps serving (this part holds today)
    assert report["policy_version"] == version
    ok = httpx.post(
        f"{gw.base_url}/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert ok.status_code == 200
    # the refusal is reported where docs/policy.md says: /health, the metric, the log (without a traceback)
    assert report.get("policy_reload_error") and str(gw.policy_path) in report["policy_reload_error"], report
    assert policy_reloads(gw.url, "invalid") == invalid_before + 1
    assert "policy watcher failed" not in gw.server_log()
