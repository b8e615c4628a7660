"""The policy's ``state`` section against the environment: shared breakers without any Redis
configured refuse to serve with a message naming what to set (they ran silently per process
before), like a ``state.redis.url_env`` naming an unset variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port  # tests/conftest.py

from llmgw_kernel.state.config import StateConfigError, StateSettings, redis_settings

POLICY = {"routes": {"m": {"targets": [{"provider": "d", "model": "demo-echo"}]}}, "providers": {"d": {"kind": "demo"}}}


def _serve(tmp_path: Path, state: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({**POLICY, "state": state}))
    cmd = [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(free_port()), "--policy", "p.yaml",
           "--data-dir", "d"]  # fmt: skip
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"breakers": "shared"}, "state.breakers: shared needs Redis, and none is configured: set LLMGW_REDIS_URL"),
        ({"redis": {"url_env": "NO_SUCH_REDIS"}, "breakers": "shared"}, "state.redis.url_env names NO_SUCH_REDIS"),
    ],
)
def test_serve_refuses_shared_state_without_a_redis_url(tmp_path: Path, state: dict, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMGW_REDIS_URL", "NO_SUCH_REDIS")}
    out = _serve(tmp_path, state, env)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was read or bound


def test_shared_breakers_take_the_redis_of_the_environment() -> None:
    found = redis_settings(StateSettings(breakers="shared"), {"LLMGW_REDIS_URL": "redis://h:6379/0"})
    assert found is not None and found[0] == "redis://h:6379/0"
    assert redis_settings(StateSettings(breakers="local"), {}) is None  # per process: nothing to share
    with pytest.raises(StateConfigError, match="state.breakers: shared"):
        redis_settings(StateSettings(breakers="shared"), {})
