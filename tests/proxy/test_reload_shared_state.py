"""A hot reload to a policy asking for shared state this environment has no Redis for
(``state.breakers: shared`` without ``LLMGW_REDIS_URL``) is rejected like an invalid policy:
the running version keeps serving and ``/metrics`` counts the reload as invalid. ``llmgw serve``
refuses the same policy at start (tests/state/test_state_config.py); before this, a reload took
it and kept the breakers per process while the policy said shared."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml
from conftest import policy_for, policy_reloads

from llmgw_kernel import load_policy

MSG = [{"role": "user", "content": "x"}]


def test_reload_to_shared_breakers_without_redis_keeps_the_old_policy(
    make_gateway, upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGW_REDIS_URL", raising=False)
    gw = make_gateway()
    v1 = load_policy(gw.policy_path).version
    assert policy_reloads(gw.url, "invalid") == 0
    shared = policy_for(upstream.base_url, state={"breakers": "shared"})
    gw.policy_path.write_text(yaml.safe_dump(shared, sort_keys=False))
    deadline, health = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        health = httpx.get(gw.url + "/health").json()
        if health.get("policy_reload_error") or health.get("policy_version") != v1:
            break
        time.sleep(0.1)
    assert health["policy_version"] == v1, "the shared-breakers policy was installed without any Redis"
    assert "state.breakers: shared needs Redis" in health["policy_reload_error"]
    assert policy_reloads(gw.url, "invalid") == 1 and policy_reloads(gw.url, "ok") == 0
    r = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-llmgw-policy-version"] == v1
    assert "policy change rejected" in gw.server_log()

    # a valid edit afterwards is taken as usual: the rejection left the watcher working
    fixed = policy_for(upstream.base_url, state={"breakers": "local"})
    gw.policy_path.write_text(yaml.safe_dump(fixed, sort_keys=False))
    v2 = load_policy(gw.policy_path).version
    deadline = time.monotonic() + 60
    while httpx.get(gw.url + "/health").json()["policy_version"] != v2:
        assert time.monotonic() < deadline, "the valid edit was never loaded"
        time.sleep(0.05)
    assert policy_reloads(gw.url, "ok") == 1
