"""With shared state the budget gauges on ``/metrics`` show the shared spend: two real `llmgw serve`
replicas (each its own data directory) on one real redis-server, traffic split unevenly between
them (official openai SDK), and both replicas' ``llmgw_budget_*_usd`` series report the same
figures — the sum of both — including an "each user" budget's users that only the other replica
served. Before, each replica reported its own share."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import Gateway
from prometheus_client.parser import text_string_to_metric_families
from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

sys.path.insert(0, str(Path(__file__).parent.parent / "keys"))
from keyed_gateway import ACTUAL_USD, metered_policy  # noqa: E402

TRAFFIC = {"a": {"alice": 3, "bob": 1}, "b": {"alice": 1, "carol": 2}}


def _policy(upstream_url: str) -> dict:
    policy = metered_policy(upstream_url)
    policy["budgets"] = {"timezone": "UTC", "limits": [
        {"scope": "global", "usd": 100.0, "window": "day"},
        {"scope": "user", "usd": 10.0, "window": "day"},  # each user: one series per spender
    ]}  # fmt: skip
    policy["state"] = {"redis": {"url_env": "TEST_REDIS_URL", "command_timeout_ms": 2000}}
    return policy


@pytest.fixture
def replicas(upstream, redis_server, tmp_path: Path):
    env = {"TEST_REDIS_URL": redis_server.url}
    a = Gateway(tmp_path / "a", _policy(upstream.base_url), env)
    try:
        b = Gateway(tmp_path / "b", _policy(upstream.base_url), env)
    except Exception:
        a.terminate()
        raise
    yield {"a": a, "b": b}
    for gw in (a, b):
        gw.terminate()


def _budget_gauges(gw: Gateway) -> dict[tuple[str, str, str], float]:
    """(metric, scope, who) -> value of the llmgw_budget_*_usd samples on ``gw``'s /metrics."""
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    return {
        (s.name, s.labels["scope"], s.labels["who"]): round(s.value, 9)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("llmgw_budget_")
    }


def test_both_replicas_report_the_shared_spend(replicas):
    for name, users in TRAFFIC.items():
        client = openai.OpenAI(base_url=replicas[name].base_url, api_key="sk-client", max_retries=0, timeout=30)
        for user, n in users.items():
            for i in range(n):
                client.chat.completions.create(
                    model="gpt-4o-mini", user=user, messages=[{"role": "user", "content": f"{user} {i}"}]
                )
    spent = {"alice": 4 * ACTUAL_USD, "bob": ACTUAL_USD, "carol": 2 * ACTUAL_USD}
    want = {("llmgw_budget_spent_usd", "global", ""): round(sum(spent.values()), 9)}
    want |= {("llmgw_budget_spent_usd", "user", who): round(usd, 9) for who, usd in spent.items()}
    want |= {("llmgw_budget_in_flight_usd", scope, who): 0.0 for _, scope, who in want}
    deadline = time.monotonic() + 20  # settled after the answers; each replica reads Redis every 5 s (REFRESH_S)
    while True:
        seen = {name: _budget_gauges(gw) for name, gw in replicas.items()}
        if all({k: v for k, v in s.items() if k in want} == want for s in seen.values()):
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)
    assert seen["a"] == seen["b"]  # limits too, and no series one replica alone has


def _redis_calls(redis_server) -> int:
    """Script runs and sorted-set reads Redis has served (what a budget refresh sends)."""
    stats = redis_server.client().info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval", "zrevrange"))


def test_the_shared_figures_are_read_at_most_once_per_refresh_interval(replicas, redis_server):
    gw = replicas["a"]
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=30)
    client.chat.completions.create(model="gpt-4o-mini", user="dave", messages=[{"role": "user", "content": "x"}])
    time.sleep(0.5)  # settled
    _budget_gauges(gw)  # a refresh: 2 series, 1 ranking
    before = _redis_calls(redis_server)
    for _ in range(20):  # a busy dashboard and Prometheus: all within REFRESH_S of that refresh
        _budget_gauges(gw)
    assert _redis_calls(redis_server) - before <= 3  # at most one more refresh, not one per scrape


def test_with_redis_gone_the_gauges_show_this_replicas_view(replicas, redis_server):
    gw = replicas["a"]
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=30)
    for i in range(2):
        client.chat.completions.create(model="gpt-4o-mini", user="erin", messages=[{"role": "user", "content": f"{i}"}])
    time.sleep(0.5)  # settled
    redis_server.kill()
    gauges = _budget_gauges(gw)  # /metrics still answers (the shared read fails at once)
    assert gauges[("llmgw_budget_spent_usd", "user", "erin")] == round(2 * ACTUAL_USD, 9)
