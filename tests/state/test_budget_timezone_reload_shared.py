"""With shared state, a hot reload that changes only `budgets.timezone` adds the log's spend of
the new zone's buckets to Redis once (docs/budgets.md, "Hot reload"): the shared admission refuses
where the new window's spend says, each settlement counted once across the reload, and a change
to a zone whose windows start at the same instants adds nothing twice.

A real `llmgw serve` on a real redis-server, the official openai SDK."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from conftest import policy_for, wait_for_rows
from redis_server import RedisServer, redis_server_fixture  # noqa: F401  (the redis_server fixture)

sys.path.insert(0, str(Path(__file__).parent.parent / "proxy"))
from test_budget_counting_live import PRICED, _ask, _client, traffic_around  # noqa: E402
from test_budget_timezone_reload_live import logged_nano, reload_to, two_zones  # noqa: E402

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
    reload_to(gw, _policy(upstream, SAME_RULES[old], limits))
    assert _ask(client, "search", "u") == 429
    check(old)

    reload_to(gw, _policy(upstream, new, limits))
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
    codes, _ = traffic_around(gw, lambda: reload_to(gw, _policy(upstream, new, limits)))
    assert set(codes) == {200}
    wait_for_rows(gw, "cost_usd > 0", len(codes))
    logged = logged_nano(gw.data_dir, new, "day")
    assert _committed(redis_server, "team", "search", "day", new) == logged > 0
