"""With shared state, a hot reload that changes only `budgets.timezone` adds the log's spend of
the new zone's buckets to Redis once (docs/budgets.md, "Hot reload"): the shared admission refuses
where the new window's spend says, each settlement counted once across the reload, and a change
to a zone whose windows start at the same instants adds nothing twice.

A real `llmgw serve` on a real redis-server, the official openai SDK."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml
from conftest import policy_for, reload_policy, wait_for_rows
from redis_server import RedisServer, redis_server_fixture  # noqa: F401  (the redis_server fixture)

sys.path.insert(0, str(Path(__file__).parent.parent / "proxy"))
from test_budget_counting_live import COST, PRICED, _ask, _client, traffic_around  # noqa: E402
from test_budget_timezone_reload_live import logged_nano, two_zones  # noqa: E402

from llmgw_kernel import load_policy  # noqa: E402
from llmgw_kernel.decisions.limits import window_bounds  # noqa: E402

#: another name for each zone two_zones() may pick, with the same rules now (same window starts)
SAME_RULES = {"UTC": "Etc/UTC", "Asia/Ho_Chi_Minh": "Asia/Saigon", "America/New_York": "US/Eastern",
              "Asia/Kolkata": "Asia/Calcutta", "Pacific/Auckland": "NZ", "Europe/Berlin": "Europe/Oslo",
              "America/Los_Angeles": "US/Pacific", "Asia/Tokyo": "Japan"}  # fmt: skip


def _policy(upstream, zone: str, limits: list[dict]) -> dict:
    doc = policy_for(upstream.base_url, **PRICED)
    doc["budgets"] = {"timezone": zone, "limits": limits}
    doc["state"] = {"redis": {"url_env": "TEST_REDIS_URL", "command_timeout_ms": 2000}}
    return doc


def _committed(redis_server: RedisServer, scope: str, who: str, window: str, zone: str) -> int:
    """Redis's committed nano-dollars of the bucket of ``zone``'s current ``window``."""
    start = int(window_bounds(time.time(), window, zone)[0].timestamp())
    return int(redis_server.client().hget(f"{{llmgw}}:b|{scope}|{who}|{window}|{start}", "c") or 0)


def test_redis_keeps_a_teams_daily_spend_across_a_time_zone_change(make_gateway, upstream, redis_server):
    old, new = two_zones()
    limits = [{"scope": "team", "usd": 0.1, "window": "day"}, {"scope": "global", "usd": 1000, "window": "month"}]
    gw = make_gateway(_policy(upstream, old, limits), env={"TEST_REDIS_URL": redis_server.url})
    client = _client(gw)
    assert [_ask(client, "search", "u") for _ in range(7)] == [200] * 6 + [429]
    assert [_ask(client, "other", "u") for _ in range(2)] == [200] * 2
    wait_for_rows(gw, "cost_usd > 0", 8)

    def check(zone: str) -> None:
        for scope, who, window, where in (("team", "search", "day", "team = 'search'"),
                                          ("team", "other", "day", "team = 'other'"),
                                          ("global", "", "month", "true")):  # fmt: skip
            logged = logged_nano(gw.data_dir, zone, window, where)
            assert _committed(redis_server, scope, who, window, zone) == logged > 0, (zone, scope, who, window)

    # another name for the same rules: every window starts where it did, the buckets counted all
    # along hold the spend already, and nothing is added to them a second time
    reload_policy(gw, _policy(upstream, SAME_RULES[old], limits))
    assert _ask(client, "search", "u") == 429
    check(old)

    reload_policy(gw, _policy(upstream, new, limits))
    assert _ask(client, "search", "u") == 429  # was 200: the new zone's bucket in Redis started empty
    rows = wait_for_rows(gw, "admission = 'budget_exceeded'", 3)
    assert "($0.11 spent" in rows[-1]["admission_reason"], rows[-1]["admission_reason"]
    assert _ask(client, "other", "u") == 200
    wait_for_rows(gw, "cost_usd > 0", 9)
    check(new)


def test_redis_counts_requests_settling_across_a_time_zone_change_once(make_gateway, upstream, redis_server):
    old, new = two_zones()
    limits = [{"scope": "team", "name": "search", "usd": 1e6, "window": "day"}]
    gw = make_gateway(_policy(upstream, old, limits), env={"TEST_REDIS_URL": redis_server.url})
    codes, _ = traffic_around(gw, lambda: reload_policy(gw, _policy(upstream, new, limits)))
    assert set(codes) == {200}
    wait_for_rows(gw, "cost_usd > 0", len(codes))
    logged = logged_nano(gw.data_dir, new, "day")
    assert _committed(redis_server, "team", "search", "day", new) == logged > 0


def test_two_workers_on_one_data_directory_seed_the_new_zone_once(upstream, redis_server, tmp_path):
    """`serve --workers 2`: each worker reloads (each with its cut), the first adds the log's spend
    of the new zone's buckets to Redis, the other finds them marked for this data directory and
    adds nothing: once per directory and bucket, not twice."""
    import httpx
    import openai

    sys.path.insert(0, str(Path(__file__).parent.parent / "cli"))
    from test_workers import Serve

    old, new = two_zones()
    limits = [{"scope": "team", "usd": 0.1, "window": "day"}]
    serve = Serve(tmp_path, _policy(upstream, old, limits), "--workers", "2", "--no-dashboards",
                  env={"TEST_REDIS_URL": redis_server.url}).wait_ready()  # fmt: skip
    try:  # a connection per request: the kernel spreads them over the workers
        client = openai.OpenAI(base_url=serve.url + "/v1", api_key="sk-anything", max_retries=0, timeout=30,
                               default_headers={"connection": "close"})  # fmt: skip
        codes: list[int] = []
        deadline = time.monotonic() + 60
        while 429 not in codes:  # until the team's $0.10 is spent (a worker not yet on Redis: 503, again)
            assert time.monotonic() < deadline, codes
            codes.append(_ask(client, "search", "u"))
        assert codes.count(200) == 6, codes
        wait_for_rows(serve, "cost_usd > 0", 6)

        serve.policy_path.write_text(yaml.safe_dump(_policy(upstream, new, limits), sort_keys=False))
        version = load_policy(serve.policy_path).version
        streak, deadline = 0, time.monotonic() + 60
        while streak < 12:  # both workers answer under the new policy
            assert time.monotonic() < deadline, "the workers did not all reload"
            health = httpx.get(serve.url + "/health", headers={"connection": "close"}, timeout=5).json()
            streak = streak + 1 if health["policy_version"] == version else 0
            time.sleep(0.05)
        assert _committed(redis_server, "team", "search", "day", new) == logged_nano(serve.data_dir, new, "day")
        assert _committed(redis_server, "team", "search", "day", new) == round(6 * COST * 1e9)  # not 12
        assert {_ask(client, "search", "u") for _ in range(4)} == {429}
        assert serve.output().count("spend seeded from the log in 1 bucket ") == 2, serve.output()  # both seeded
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]


def test_redis_moves_a_reservation_in_flight_to_the_new_zones_window(make_gateway, upstream, redis_server):
    from test_budget_timezone_reload_live import open_slow_stream, slow_stream_policy

    old, new = two_zones()
    limits = [{"scope": "team", "usd": 1000, "window": "day"}]

    def policy(zone: str) -> dict:
        doc = slow_stream_policy(upstream, zone, limits)
        doc["state"] = _policy(upstream, zone, limits)["state"]
        return doc

    gw = make_gateway(policy(old), env={"TEST_REDIS_URL": redis_server.url})
    client = _client(gw)
    chunks = open_slow_stream(client, "search")

    def held(zone: str) -> int:
        start = int(window_bounds(time.time(), "day", zone)[0].timestamp())
        return int(redis_server.client().hget(f"{{llmgw}}:b|team|search|day|{start}", "r") or 0)

    reserved = held(old)
    assert reserved > 0
    reload_policy(gw, policy(new))
    assert (held(old), held(new)) == (0, reserved)  # was (reserved, 0)
    for _ in chunks:
        pass
    wait_for_rows(gw, "cost_usd > 0", 1)
    assert held(new) == 0
    assert _committed(redis_server, "team", "search", "day", new) == logged_nano(gw.data_dir, new, "day") > 0
