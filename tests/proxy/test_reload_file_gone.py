"""The live policy file deleted under a running ``llmgw serve``: the gateway keeps serving the
version it has, /health says the file is missing (it kept the previous reload's error, or
nothing, before), and the file put back is read again and the message cleared."""

from __future__ import annotations

import time

import httpx

from llmgw_kernel import load_policy

MSG = [{"role": "user", "content": "x"}]


def _health_until(url: str, done, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(url + "/health").json()
        if done(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_a_deleted_policy_file_is_reported_and_its_return_read(make_gateway) -> None:
    gw = make_gateway()
    text = gw.policy_path.read_text()
    version = load_policy(gw.policy_path).version
    gw.policy_path.unlink()
    health = _health_until(gw.url, lambda h: h.get("policy_reload_error"))
    assert health["policy_reload_error"] == f"the policy file {gw.policy_path} is missing; still serving {version}"
    assert health["policy_version"] == version
    r = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-llmgw-policy-version"] == version
    assert "is missing; still serving" in gw.server_log()

    gw.policy_path.write_text(text)
    health = _health_until(gw.url, lambda h: not h.get("policy_reload_error"))
    assert health["policy_reload_error"] is None and health["policy_version"] == version
