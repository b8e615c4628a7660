"""With shared state, Redis holds spend only in the buckets a budget reads (as the process does:
docs/budgets.md, "What spend is counted"), and a hot reload that adds a budget adds the log's
spend of its buckets to Redis once — the shared admission refuses where the month's spend says.

A real `llmgw serve` on a real redis-server, the official openai SDK."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from conftest import policy_for, policy_reloads, until, wait_for_rows
from redis_server import RedisServer, redis_server_fixture  # noqa: F401  (the redis_server fixture)

sys.path.insert(0, str(Path(__file__).parent.parent / "proxy"))
from test_budget_counting_live import COST, PRICED, _ask, _client, traffic_around  # noqa: E402


def _policy(upstream, limits: list[dict]) -> dict:
    doc = policy_for(upstream.base_url, **PRICED)
    doc["budgets"] = {"timezone": "UTC", "limits": limits}
    doc["state"] = {"redis": {"url_env": "TEST_REDIS_URL", "command_timeout_ms": 2000}}
    return doc


def _bucket_keys(redis_server: RedisServer) -> list[str]:
    return sorted(k.decode() for k in redis_server.client().scan_iter(count=1000) if k.startswith(b"{llmgw}:b|"))


def test_redis_counts_the_budgets_buckets_and_a_reload_seeds_the_ones_it_adds(
    make_gateway, upstream, redis_server: RedisServer
) -> None:  # fmt: skip
    before = [{"scope": "team", "name": "search", "usd": 1000, "window": "month"}]
    gw = make_gateway(_policy(upstream, before), env={"TEST_REDIS_URL": redis_server.url})
    client = _client(gw)
    codes = [_ask(client, "search" if i % 2 else f"team-{i:04d}", f"end-user-{i % 4}") for i in range(20)]
    assert codes == [200] * 20
    wait_for_rows(gw, "cost_usd > 0", 20)
    # before: every team, user, the key and global, in 3 windows each (99 keys); now the one budget's
    [key] = _bucket_keys(redis_server)
    assert key.startswith("{llmgw}:b|team|search|month|"), key
    assert int(redis_server.client().hget(key, "c")) == round(10 * COST * 1e9)

    # each user gets a $0.100 monthly budget: end-user-1 spent $0.090 (5 requests) before the reload
    gw.policy_path.write_text(yaml.safe_dump(_policy(upstream, [
        *before, {"scope": "user", "usd": 0.1, "window": "month"},
    ]), sort_keys=False))  # fmt: skip
    until("the reload", lambda: policy_reloads(gw.url, "ok") >= 1)
    assert [_ask(client, "search", "end-user-1") for _ in range(2)] == [200, 429]  # $0.108 >= $0.100
    users = [k for k in _bucket_keys(redis_server) if k.startswith("{llmgw}:b|user|")]
    assert len(users) == 4, users
    spent = {k.split("|")[-3]: int(redis_server.client().hget(k, "c")) for k in users}
    assert spent == {"end-user-0": round(5 * COST * 1e9), "end-user-1": round(6 * COST * 1e9),
                     "end-user-2": round(5 * COST * 1e9), "end-user-3": round(5 * COST * 1e9)}  # fmt: skip


def test_redis_counts_requests_settling_while_a_reload_seeds_once(
    make_gateway, upstream, redis_server: RedisServer
) -> None:  # fmt: skip
    """As the process's own count (tests/proxy/test_budget_counting_live.py): each settlement in
    Redis's bucket once, whether it settled before the reload's cut (added from the log) or after
    (added by its settlement) — with the settlements under way at the cut waited for."""
    import time

    from llmgw_kernel import open_log
    from llmgw_kernel.decisions.limits import window_bounds

    gw = make_gateway(_policy(upstream, [{"scope": "global", "usd": 1e6, "window": "month"}]),
                      env={"TEST_REDIS_URL": redis_server.url})  # fmt: skip

    def reload() -> None:
        gw.policy_path.write_text(yaml.safe_dump(_policy(upstream, [
            {"scope": "global", "usd": 1e6, "window": "month"},
            {"scope": "team", "name": "search", "usd": 1e6, "window": "month"},
        ]), sort_keys=False))  # fmt: skip
        until("the reload", lambda: policy_reloads(gw.url, "ok") >= 1)

    codes, _ = traffic_around(gw, reload)
    assert set(codes) == {200}
    wait_for_rows(gw, "cost_usd > 0", len(codes))
    con = open_log(gw.data_dir)
    start = window_bounds(time.time(), "month", "UTC")[0].timestamp()
    (logged,) = con.execute(
        "SELECT sum(CAST(round(cost_usd * 1e9) AS BIGINT)) FROM requests WHERE admitted_ts >= ?", [start]
    ).fetchone()
    con.close()
    [key] = [k for k in _bucket_keys(redis_server) if k.startswith("{llmgw}:b|team|search|month|")]
    assert int(redis_server.client().hget(key, "c")) == logged


def test_a_reload_adding_budgets_redis_refuses_waits_for_it(make_gateway, upstream, redis_server: RedisServer) -> None:
    """The added buckets' spend must reach Redis: while Redis refuses it (full) the reload is
    not installed (/health says why) and is retried; once Redis takes writes again (its data
    kept), the reload goes through with the spend made before it."""
    import httpx

    before = [{"scope": "global", "usd": 1000, "window": "month"}]
    gw = make_gateway(_policy(upstream, before), env={"TEST_REDIS_URL": redis_server.url})
    client = _client(gw)
    assert [_ask(client, "search", "end-user-1") for _ in range(5)] == [200] * 5
    wait_for_rows(gw, "cost_usd > 0", 5)
    old = httpx.get(gw.url + "/health").json()["policy_version"]
    redis_server.fill()
    gw.policy_path.write_text(yaml.safe_dump(_policy(upstream, [
        *before, {"scope": "user", "usd": 0.1, "window": "month"},
    ]), sort_keys=False))  # fmt: skip

    def refused() -> dict | None:
        health = httpx.get(gw.url + "/health").json()
        return health if health.get("policy_reload_error") else None

    health = until("the reload refused", refused)
    assert "could not be seeded" in health["policy_reload_error"] and health["policy_version"] == old, health
    redis_server.make_room()
    until("the reload", lambda: policy_reloads(gw.url, "ok") >= 1, timeout=90)
    assert [_ask(client, "search", "end-user-1") for _ in range(2)] == [200, 429]  # $0.108 >= $0.100
