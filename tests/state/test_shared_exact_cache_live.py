"""The exact cache shared by two real `llmgw serve` replicas through a real redis-server (one data
directory, each replica its own log series), with the official openai SDK as the client: an
answer served by one replica is a hit on the other; the live policy replayed over both logs
(one table, one exact cache folded in time order) reproduces every cache decision; and with
Redis killed mid-run every request is still answered — as a miss, flagged — until it is back."""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from conftest import Gateway, policy_for, until, wait_for_rows
from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel import replay
from llmgw_kernel.cache.service import SHARED_UNAVAILABLE

PRICE = {"input_per_1m": 2.5, "output_per_1m": 10.0}


def _policy(upstream_url: str) -> dict:
    policy = policy_for(upstream_url)
    local = {"provider": "local", "model": "gpt-4o-mini"}
    policy["cache"] = {"exact": {"ttl_s": 600}}
    policy["routes"] = {
        "cached": {"targets": [local]},
        "small": {"targets": [local], "cache": {"exact": {"ttl_s": 600, "max_entries": 3}}},  # evicts
        "short-ttl": {"targets": [local], "cache": {"exact": {"ttl_s": 1}}},  # expires within the run
    }
    policy["pricing"] = {"gpt-4o-mini": PRICE}
    policy["state"] = {"redis": {"url_env": "TEST_REDIS_URL", "command_timeout_ms": 2000, "connect_timeout_ms": 300}}
    return policy


@pytest.fixture
def replicas(upstream, redis_server, tmp_path: Path):
    """Two replicas of one policy on one data directory and one Redis."""
    env = {"TEST_REDIS_URL": redis_server.url}
    a = Gateway(tmp_path / "a", _policy(upstream.base_url), env)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "data").symlink_to(a.data_dir)
    try:
        b = Gateway(tmp_path / "b", _policy(upstream.base_url), env)
    except Exception:
        a.terminate()
        raise
    yield a, b
    for gw in (a, b):
        gw.terminate()


def ask(gw: Gateway, text: str, route: str = "cached", key: str = "sk-client-a", stream: bool = False, headers=None):
    """(response headers, answer text) of one chat completion through ``gw``."""
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": text}]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(
            model=route, messages=messages, extra_headers=headers or {}
        )
        return raw.headers, raw.parse().choices[0].message.content
    with client.chat.completions.with_streaming_response.create(
        model=route, messages=messages, stream=True, extra_headers=headers or {}
    ) as resp:
        text_out = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        return resp.headers, text_out


def upstream_calls(upstream, text: str) -> int:
    return sum(1 for r in upstream.requests if r["body"].get("messages", [{}])[-1].get("content") == text)


def test_an_answer_served_by_one_replica_is_a_hit_on_the_other(replicas, upstream) -> None:
    a, b = replicas
    text = f"what is shared? {uuid.uuid4().hex}"
    first, answer = ask(a, text)
    assert first["x-llmgw-cache"] == "miss"
    second, again = ask(b, text)
    assert second["x-llmgw-cache"] == "hit", second
    assert second["x-llmgw-cache-source"] == first["x-request-id"]
    assert again == answer
    assert upstream_calls(upstream, text) == 1
    streamed, streamed_text = ask(b, text, stream=True)  # a hit served as a stream, from A's JSON answer
    assert streamed["x-llmgw-cache"] == "hit" and streamed_text == answer
    other_key, _ = ask(b, text, key="sk-client-b")  # another tenant's namespace: no hit
    assert other_key["x-llmgw-cache"] == "miss"
    rows = {r["request_id"]: r for r in wait_for_rows(a, f"request_id = '{second['x-request-id']}'")}
    row = rows[second["x-request-id"]]
    assert (row["cache"], row["cache_source"], row["cost_usd"]) == ("hit", first["x-request-id"], 0.0)
    assert row["saved_usd"] > 0
    health = httpx.get(f"{b.url}/health", timeout=5).json()["cache"]
    assert health["exact_store"] == "redis" and health["exact_entries"] == {}


def _pick(i: int, n: int) -> int:
    """A deterministic draw in [0, n) for request ``i``."""
    return int(hashlib.sha256(f"draw-{i}".encode()).hexdigest()[:8], 16) % n


def test_replay_of_both_replicas_logs_matches_the_shared_cache(replicas, upstream) -> None:
    """Traffic alternating between the replicas, four requests in flight, on a route that evicts
    and one that expires, streamed and not, with no-cache and two tenants: replaying the live
    policy over the shared log reproduces every cache decision, cross-replica hits included."""
    a, b = replicas
    tag = uuid.uuid4().hex[:8]
    prompts = [f"{tag} question {k}" for k in range(7)]
    routes = ["cached", "small", "small", "short-ttl"]
    served_by: dict[str, str] = {}

    def one(i: int) -> tuple[str, str]:
        gw = (a, b)[i % 2]
        headers = {"x-llmgw-cache": "no-cache"} if _pick(i + 1000, 13) == 0 else None
        got, _ = ask(
            gw, prompts[_pick(i, len(prompts))], routes[_pick(i + 7, len(routes))],
            key=("sk-client-a", "sk-client-b")[_pick(i + 3, 5) == 0], stream=_pick(i + 11, 3) == 0, headers=headers,
        )  # fmt: skip
        return got["x-request-id"], "ab"[i % 2]

    with ThreadPoolExecutor(4) as pool:
        for start in range(0, 96, 24):
            for rid, who in pool.map(one, range(start, start + 24)):
                served_by[rid] = who
            time.sleep(1.1)  # the short-TTL route's answers expire between bursts
    rows = wait_for_rows(a, f"request_id IN ({', '.join(repr(r) for r in served_by)})", n=len(served_by))
    assert len(rows) == len(served_by)
    hits = [r for r in rows if r["cache"] == "hit"]
    across = [r for r in hits if served_by[r["request_id"]] != served_by[r["cache_source"]]]
    assert len(hits) >= 20 and len(across) >= 8, (len(hits), len(across))
    repeats_missed = [
        r for r in rows if r["cache"] == "miss" and r["cache_control"] is None
        and any(o["cache_key"] == r["cache_key"] and o["cache_stored_ts"] and o["cache_stored_ts"] < r["ts"].timestamp()
                for o in rows if o["route"] == r["route"] and o["key_id"] == r["key_id"])
    ]  # fmt: skip
    assert repeats_missed, "neither eviction nor expiry was exercised"
    assert all(r["cache_lookup_ts"] is not None for r in rows if r["cache"] in ("hit", "miss"))

    since = min(r["ts"] for r in rows)
    result = replay(a.policy_path, a.data_dir, since=since)
    mine = result.decisions.loc[list(served_by)]
    wrong = mine[mine["replay_cache"] != mine["logged_cache"]]
    assert wrong.empty, wrong[["logged_cache", "replay_cache"]].to_string()
    assert int(mine["differs"].sum()) == 0
    assert result.summary["differs_from_log"]["cache"] == 0


def test_with_redis_killed_requests_are_answered_as_misses_until_it_is_back(replicas, upstream, redis_server) -> None:
    """Redis killed: every request answered (a miss, flagged, not stored); Redis back empty: the
    replicas reconnect by themselves and seed it from the log, so the answer stored before the
    outage is a hit again; replay agrees with the log, outage included (it replayed the outage's
    misses as hits before)."""
    a, b = replicas
    tag = uuid.uuid4().hex[:8]
    text = f"{tag} asked throughout"
    first, _ = ask(a, text)
    assert ask(b, text)[0]["x-llmgw-cache"] == "hit"
    redis_server.kill()
    down = [ask((a, b)[i % 2], text) for i in range(6)]  # every one answered, none from a cache
    assert [h["x-llmgw-cache"] for h, _ in down] == ["miss"] * 6
    ids = [h["x-request-id"] for h, _ in down]
    rows = wait_for_rows(a, f"request_id IN ({', '.join(repr(r) for r in ids)})", n=6)
    assert [(r["status"], r["cache"], r["cache_reason"]) for r in rows] == [(200, "miss", SHARED_UNAVAILABLE)] * 6
    assert all(r["cache_stored_ts"] is None for r in rows)  # not stored anywhere, and the rows say so
    metrics = httpx.get(f"{a.url}/metrics", timeout=5).text + httpx.get(f"{b.url}/metrics", timeout=5).text
    assert 'llmgw_state_unavailable_total{decision="cache_miss"}' in metrics
    assert 'llmgw_state_unavailable_total{decision="cache_not_stored"}' in metrics
    redis_server.start()  # back, empty: no request is needed for the replicas to reconnect and seed it
    until("Redis seeded from the log", lambda: redis_server.client().smembers("{llmgw}:xc|seeded"), 15)
    # the marker says one replica is back; each finds Redis again on its own (answering misses until
    # then: the full suite under load once asked the other before it had, 0.25 s watch or not)
    until(
        "both replicas see Redis again",
        lambda: all("llmgw_state_up 1.0" in httpx.get(f"{g.url}/metrics", timeout=5).text for g in (a, b)),
        15,
    )
    after = [ask((b, a)[i % 2], text)[0] for i in range(4)]
    assert [(h["x-llmgw-cache"], h["x-llmgw-cache-source"]) for h in after] == [("hit", first["x-request-id"])] * 4
    assert a.proc.poll() is None and b.proc.poll() is None
    served = [first["x-request-id"], *ids, *(h["x-request-id"] for h in after)]
    rows = wait_for_rows(a, f"request_id IN ({', '.join(repr(r) for r in served)})", n=len(served))
    result = replay(a.policy_path, a.data_dir, since=min(r["ts"] for r in rows))
    mine = result.decisions.loc[served]
    # a lookup Redis did not answer found nothing, and an answer stored nowhere fills nothing: replay agrees
    assert set(mine.index[mine["replay_cache"] != mine["logged_cache"]]) == set()


def _row(gw: Gateway, rid: str) -> dict:
    rows = wait_for_rows(gw, f"request_id = '{rid}'")
    assert rows, rid
    return rows[0]
