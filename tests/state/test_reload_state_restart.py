"""The ``state`` section's Redis settings are read at start only: a hot reload that changes them
(another ``url_env``, another ``prefix``, Redis added where there was none) is refused like an
invalid policy, with "restart the gateway to change state" in ``/health``, and the running
version keeps serving. Before, such a reload was installed silently while the process kept its
old Redis (or none). ``state.breakers`` still follows a reload (docs/deploy.md)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import yaml
from conftest import policy_for, policy_reloads
from redis_server import RedisServer, redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel import load_policy

MSG = [{"role": "user", "content": "x"}]


def _reload_outcome(gw: Any, policy: dict, old: str) -> dict:
    """Write ``policy`` to the live file; /health once the reload was taken or refused."""
    gw.policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(gw.url + "/health").json()
        if health.get("policy_reload_error") or health.get("policy_version") != old:
            return health
        assert time.monotonic() < deadline, "the edit was neither taken nor refused"
        time.sleep(0.1)


def _assert_refused(gw: Any, health: dict, old: str, invalid: int, words: str) -> None:
    assert health["policy_version"] == old, "a reload changing the shared state was installed"
    assert "restart the gateway to change state" in health["policy_reload_error"], health["policy_reload_error"]
    assert words in health["policy_reload_error"], health["policy_reload_error"]
    assert policy_reloads(gw.url, "invalid") == invalid and policy_reloads(gw.url, "ok") == 0
    r = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-llmgw-policy-version"] == old


def test_reload_adding_redis_to_a_gateway_without_it_is_refused(
    make_gateway, upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGW_REDIS_URL", raising=False)
    gw = make_gateway(env={"OTHER_REDIS_URL": "redis://127.0.0.1:1/0"})  # set, never connected to
    old = load_policy(gw.policy_path).version
    other = policy_for(upstream.base_url, state={"redis": {"url_env": "OTHER_REDIS_URL"}})
    health = _reload_outcome(gw, other, old)
    _assert_refused(gw, health, old, 1, "from no Redis to Redis from OTHER_REDIS_URL")
    assert "redis://" not in health["policy_reload_error"]  # the URL (it may carry a password) is never said


def test_reload_changing_redis_settings_is_refused_and_breakers_still_follow(
    make_gateway, upstream, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGW_REDIS_URL", raising=False)
    gw = make_gateway(
        policy_for(upstream.base_url, state={"redis": {"url_env": "TEST_REDIS_URL"}}),
        env={"TEST_REDIS_URL": redis_server.url},
    )
    old = load_policy(gw.policy_path).version
    moved = policy_for(upstream.base_url, state={"redis": {"url_env": "TEST_REDIS_URL", "prefix": "{other}"}})
    health = _reload_outcome(gw, moved, old)
    _assert_refused(gw, health, old, 1, "prefix '{llmgw}' -> '{other}'")

    # the breakers mode is not part of the Redis connection: it follows a reload as documented
    shared = policy_for(upstream.base_url, state={"redis": {"url_env": "TEST_REDIS_URL"}, "breakers": "shared"})
    gw.policy_path.write_text(yaml.safe_dump(shared, sort_keys=False))
    new, deadline = load_policy(gw.policy_path).version, time.monotonic() + 60
    while (health := httpx.get(gw.url + "/health").json())["policy_version"] != new:  # the refusal's error shows
        assert time.monotonic() < deadline, health  # until this edit is read: wait for the version itself
        time.sleep(0.1)
    assert not health["policy_reload_error"] and policy_reloads(gw.url, "ok") == 1
