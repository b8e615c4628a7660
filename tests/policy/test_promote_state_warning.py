"""``llmgw policy promote`` warns (stderr, exit 0: it may run away from the deploy's
environment) when the candidate changes where the shared state lives — a running gateway refuses
that reload (``tests/state/test_reload_state_restart.py``) and keeps serving the old version until
restarted — and says nothing when ``state.redis`` stays as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import policy_for

from llmgw_kernel import load_policy


def _promote(cand: Path, live: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OTHER_REDIS_URL": "redis://127.0.0.1:1/0"}
    env.pop("LLMGW_REDIS_URL", None)
    (cwd / "data").mkdir(exist_ok=True)  # a --data-dir that does not exist is refused
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "policy", "promote", str(cand), "--policy", str(live),
         "--data-dir", str(cwd / "data")],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip


def test_promote_warns_when_the_candidate_changes_state_redis(tmp_path: Path) -> None:
    live, cand = tmp_path / "live.yaml", tmp_path / "cand.yaml"
    live.write_text(yaml.safe_dump(policy_for("http://127.0.0.1:9/v1")))
    cand.write_text(
        yaml.safe_dump(policy_for("http://127.0.0.1:9/v1", state={"redis": {"url_env": "OTHER_REDIS_URL"}}))
    )
    out = _promote(cand, live, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "changes state.redis" in out.stderr and "restart the gateway to change state" in out.stderr, out.stderr
    assert "redis://" not in out.stderr
    assert load_policy(live).version == load_policy(cand).version  # a warning: the promotion is done

    same = policy_for("http://127.0.0.1:8/v1", state={"redis": {"url_env": "OTHER_REDIS_URL"}})
    cand.write_text(yaml.safe_dump(same))
    out = _promote(cand, live, tmp_path)
    assert out.returncode == 0 and "state.redis" not in out.stderr, out.stderr
