"""Outside-style: `--workers 2` without shared state must not take on rate limits by a hot reload.

docs/deploy.md, "Several workers on one machine": "Shared state is required when it matters. N > 1
is refused (exit status 2, before anything is bound or written) when ... the policy has budgets or
rate limits, unless shared state is configured: each worker would enforce them alone."
docs/policy.md: the server reloads the live file; "an invalid one is refused with the reason in
`/health` (`policy_reload_error`) ... and the old policy keeps serving."

Started without limits, the group accepts a reload that adds `rate_limits: [{scope: global, rpm: 3}]`
(no reload error) and then each worker enforces it alone: 6 of 10 requests are admitted, twice
the limit — exactly what the start-up refusal exists to prevent. Either the reload is refused
(with the reason in /health) or the limit holds across the group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from conftest import UPSTREAM_KEY, free_port, policy_for, sigterm_and_wait


def test_reload_adding_limits_to_workers_without_shared_state(upstream, tmp_path: Path) -> None:
    policy = policy_for(upstream.base_url)
    live = tmp_path / "live.yaml"
    live.write_text(yaml.safe_dump(policy, sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOCAL_API_KEY": UPSTREAM_KEY}
    env.pop("LLMGW_ADMIN_TOKEN", None)
    env.pop("LLMGW_REDIS_URL", None)
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--workers", "2", "--no-dashboards", "--port", str(port),
             "--policy", str(live), "--data-dir", str(tmp_path / "data"), "--drain-timeout", "5"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    old = httpx.get(f"{url}/health", timeout=1).json()["policy_version"]
                    break
                except (httpx.HTTPError, ValueError):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)

            policy["rate_limits"] = [{"scope": "global", "rpm": 3}]
            live.write_text(yaml.safe_dump(policy, sort_keys=False))
            # both workers poll the file every 0.5 s: wait (bounded) until every report has read it,
            # refused (old version, an error) or taken (a new version) — not a fixed 3 s, late under load
            deadline = time.monotonic() + 60
            while True:
                reports = [
                    httpx.get(f"{url}/health", headers={"connection": "close"}, timeout=5).json() for _ in range(6)
                ]
                if all(r["policy_version"] != old or r["policy_reload_error"] for r in reports):
                    break
                assert time.monotonic() < deadline, reports
                time.sleep(0.2)
            if all(r["policy_version"] == old and r["policy_reload_error"] for r in reports):
                assert all("rate limits" in r["policy_reload_error"] for r in reports), reports
                return  # refused, with the reason in /health: what the docs ask for
            codes = [
                httpx.post(
                    f"{url}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"w{i}"}]},
                    headers={"connection": "close"},  # a new connection each: the kernel spreads them
                    timeout=30,
                ).status_code
                for i in range(10)
            ]
            assert codes.count(200) <= 3, (codes, [r["policy_version"] for r in reports])
        finally:
            sigterm_and_wait(proc, 30)
