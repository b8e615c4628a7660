"""``llmgw policy validate`` / ``promote`` warn (never fail: they may run away from the deploy's
environment) when the policy asks for state shared through Redis and this environment names
no Redis: ``llmgw serve`` here would refuse it, and a gateway here would reject the reload."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

POLICY = {"routes": {"m": {"targets": [{"provider": "d", "model": "demo-echo"}]}}, "providers": {"d": {"kind": "demo"}}}
NO_REDIS = "state.breakers: shared needs Redis, and none is configured: set LLMGW_REDIS_URL"


def _policy(tmp_path: Path, state: dict | None) -> Path:
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump({**POLICY, **({"state": state} if state is not None else {})}))
    return path


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("LLMGW_REDIS_URL", "NO_SUCH_REDIS")}
    cmd = [sys.executable, "-m", "llmgw_kernel", "policy", *args]
    return subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("state", "env", "warning"),
    [
        ({"breakers": "shared"}, {}, NO_REDIS),
        ({"redis": {"url_env": "NO_SUCH_REDIS"}}, {}, "state.redis.url_env names NO_SUCH_REDIS, which is not set"),
        ({"breakers": "shared"}, {"LLMGW_REDIS_URL": "redis://127.0.0.1:1/0"}, None),
        ({"redis": {"url_env": "NO_SUCH_REDIS"}}, {"NO_SUCH_REDIS": "redis://127.0.0.1:1/0"}, None),
        ({"breakers": "local"}, {}, None),
        (None, {}, None),
    ],
)
def test_validate_warns_of_shared_state_without_redis(
    tmp_path: Path, state: dict | None, env: dict[str, str], warning: str | None
) -> None:
    path = _policy(tmp_path, state)
    out = _cli("validate", str(path), env=env)
    assert out.returncode == 0, out.stdout + out.stderr  # a warning, not an error
    assert f"{path}: ok (" in out.stdout
    if warning is None:
        assert "warning" not in out.stderr, out.stderr
    else:
        assert f"{path}: warning: {warning}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_promote_warns_of_shared_breakers_without_redis_and_still_promotes(tmp_path: Path) -> None:
    live = tmp_path / "live" / "live.yaml"
    live.parent.mkdir()
    live.write_text(yaml.safe_dump(POLICY))
    candidate = _policy(tmp_path, {"breakers": "shared"})
    (tmp_path / "data").mkdir()  # a --data-dir that does not exist is refused
    out = _cli("promote", str(candidate), "--policy", str(live), "--data-dir", str(tmp_path / "data"), env={})
    assert out.returncode == 0, out.stderr
    assert f"{candidate}: warning: {NO_REDIS}" in out.stderr
    assert "promoted" in out.stdout and yaml.safe_load(live.read_text())["state"] == {"breakers": "shared"}

    plain = _policy(tmp_path, None)  # nothing shared asked: no warning
    out = _cli("promote", str(plain), "--policy", str(live), "--data-dir", str(tmp_path / "data"), env={})
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
