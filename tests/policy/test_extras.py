"""A policy that needs an optional extra this installation lacks (issue 13): `llmgw policy
validate`, `llmgw serve`, a reload and `llmgw policy promote` name the setting and the exact
install command — before, the server started "ok", logged `No module named 'torch'` once and
the semantic cache silently never hit.

"Not installed" is made real for the child process: a `sitecustomize` first on its PYTHONPATH
puts a finder in front of the import system that refuses the extra's modules, exactly as
an installation without them would (ModuleNotFoundError)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port

BLOCKER = """
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""
DEMO = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}
INSTALL = "pip install -c constraints.txt 'llmgw[semantic]'"


def _semantic(route_level: bool = False) -> dict:
    policy = yaml.safe_load(yaml.safe_dump(DEMO))
    if route_level:
        policy["routes"]["demo"]["cache"] = {"semantic": {"threshold": 0.9}}
    else:
        policy["cache"] = {"semantic": {"threshold": 0.9}}
    return policy


@pytest.fixture
def without_torch(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCKER)
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), root, os.environ.get("PYTHONPATH", "")])}


def _llmgw(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmgw_kernel", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_validate_names_the_setting_and_the_install_command(tmp_path: Path, without_torch) -> None:
    (tmp_path / "top.yaml").write_text(yaml.safe_dump(_semantic()))
    (tmp_path / "route.yaml").write_text(yaml.safe_dump(_semantic(route_level=True)))
    out = _llmgw("policy", "validate", "top.yaml", "route.yaml", env=without_torch, cwd=tmp_path)
    assert out.returncode == 1
    assert (
        f"top.yaml: cache.semantic: the semantic cache needs the 'semantic' extra (torch not installed): {INSTALL}"
        in out.stdout
    )
    assert "route.yaml: routes.demo.cache.semantic: the semantic cache needs" in out.stdout
    installed = _llmgw("policy", "validate", "top.yaml", env=dict(os.environ), cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout  # with the extra (this test environment has it): valid


def test_serve_refuses_to_start_and_promote_refuses(tmp_path: Path, without_torch) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_semantic()))
    out = _llmgw("serve", "--port", str(free_port()), "--policy", "p.yaml", "--data-dir", "d", env=without_torch,
                 cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and INSTALL in out.stderr and "cache.semantic" in out.stderr
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(DEMO))
    promoted = _llmgw("policy", "promote", "p.yaml", "--policy", "live.yaml", env=without_torch, cwd=tmp_path)
    assert promoted.returncode == 1 and INSTALL in promoted.stderr
    assert yaml.safe_load((tmp_path / "live.yaml").read_text()) == DEMO  # nothing changed


def test_a_reload_that_needs_the_extra_is_rejected_and_the_old_policy_keeps_serving(
    tmp_path: Path, without_torch
) -> None:
    live = tmp_path / "live.yaml"
    live.write_text(yaml.safe_dump(DEMO))
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", str(live),
                             "--data-dir", str(tmp_path / "d"), "--no-dashboards"], env=without_torch, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        health = _poll(url, lambda h: h.get("policy_version"))
        first = health["policy_version"]
        live.write_text(yaml.safe_dump(_semantic()))
        health = _poll(url, lambda h: h.get("policy_reload_error"))
        assert INSTALL in health["policy_reload_error"] and health["policy_version"] == first
        r = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "x"}]}
        )
        assert r.status_code == 200 and r.headers["x-llmgw-policy-version"] == first
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _poll(url: str, ready, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{url}/health", timeout=2).json()
            if ready(last):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout}s: {last}")
