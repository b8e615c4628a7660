"""A sampled semantic hit's check (a ``cache.check`` row, issue 17) is spend, not a request.

The log holds three client requests and the check of the semantic hit among them, written
as the proxy writes it (``cache_verify.check_record`` through the ``LogWriter``, read back
through DuckDB). Every page must count three requests — their errors, latency, hit rate,
routes, targets and policy versions — while every spend figure includes the check's cost,
and the cache page shows that cost beside its savings.
"""

from __future__ import annotations

import json

import pytest

from llmgw_kernel.dashboard import OverviewStore
from llmgw_kernel.dashboard.cache_data import cache
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.cost_data import cost
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.guardrail_data import guardrails
from llmgw_kernel.dashboard.policy_data import policy
from llmgw_kernel.dashboard.queries import LogQueries
from llmgw_kernel.dashboard.routing_data import routing
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.proxy.cache_verify import check_record

NOW = 1_800_000_000.0
CHECK_COST = 0.004
BODY = {"model": "chat", "messages": [{"role": "user", "content": "how do I reset my password?"}]}


def _request(rid: str, age: float, outcome: str, latency: float, **extra) -> RequestRecord:
    rec = RequestRecord(rid, NOW - age, "chat.completions")
    rec.route, rec.team, rec.key_id, rec.end_user, rec.policy_version = "chat", "search", "k1", "u1", "v1"
    rec.outcome, rec.status, rec.latency_ms = outcome, (200 if outcome == "ok" else 502), latency
    rec.plan, rec.request_raw = ("openai/gpt-4o-mini",), json.dumps(BODY).encode()
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    target = {"target": "openai/gpt-4o-mini", "status": 200, "latency_ms": 100.0, "error": None}
    miss = _request("miss", 50, "ok", 100.0, cache="miss", cost_usd=0.01, target=target["target"],
                    provider="openai", attempts=[target], usage={"prompt_tokens": 10, "completion_tokens": 20})  # fmt: skip
    hit = _request("hit", 40, "ok", 5.0, cache="semantic-hit", cost_usd=0.0, saved_usd=0.01, cache_source="miss",
                   cache_similarity=0.93, cache_threshold=0.9, cache_verify="sampled")  # fmt: skip
    failed = {"target": "openai/gpt-4o-mini", "status": 500, "latency_ms": 20.0, "error": "HTTP 500"}
    error = _request("error", 30, "upstream_error", 50.0, cache="miss", attempts=[failed], error_type="api_error")
    check = check_record(hit, BODY)  # the proxy's own record of the hit's check
    check.ts = NOW - 39
    check.status, check.outcome, check.latency_ms = 200, "ok", 900.0
    check.target, check.provider, check.attempts = target["target"], "openai", [dict(target)]
    check.usage, check.cost_usd = {"prompt_tokens": 10, "completion_tokens": 20}, CHECK_COST
    writer = LogWriter(data_dir)
    for rec in (miss, hit, error, check):
        writer.append(rec)
    writer.close()
    c = Context(data_dir, queries=LogQueries(data_dir, clock=lambda: NOW))
    yield c
    c.close()


def test_the_log_holds_the_check_row(ctx):
    rows = ctx.queries.answer(("probe",), lambda con, now: con.execute(
        "SELECT endpoint, count(*), sum(cost_usd) FROM requests GROUP BY 1 ORDER BY 1").fetchall())  # fmt: skip
    assert rows == [("cache.check", 1, pytest.approx(CHECK_COST)), ("chat.completions", 3, pytest.approx(0.01))]


def test_overview_counts_requests_and_includes_the_checks_cost(ctx):
    h = OverviewStore(ctx.data_dir, queries=ctx.queries).overview(filters=Filters(window="1 h")).headline
    assert (h.requests, h.errors) == (3, 1)
    assert h.p99_ms == pytest.approx(100.0 - 0.02 * 50)  # over 5, 50 and 100 ms: the check's 900 ms is not a latency
    assert (h.cacheable, h.cache_hits, h.semantic_hits) == (3, 1, 1)
    assert (h.upstream_failed, h.rescued, h.retried) == (1, 0, 0)
    assert h.cost_usd == pytest.approx(0.01 + CHECK_COST)
    assert (h.checks, h.check_cost_usd) == (1, pytest.approx(CHECK_COST))
    assert (h.prompt_tokens, h.completion_tokens) == (20, 40)  # tokens are spend: the check's are paid for
    data = OverviewStore(ctx.data_dir, queries=ctx.queries).overview(filters=Filters(window="1 h"))
    assert data.series["requests_per_min"].sum() * data.window.bucket_s / 60 == pytest.approx(3)
    assert set(data.recent["request_id"]) == {"miss", "hit", "error"}
    assert data.errors_by_target.set_index("target").loc["openai/gpt-4o-mini", "attempts"] == 2


def test_cost_page_spend_includes_checks_but_requests_do_not(ctx):
    d = cost(ctx, Filters(window="1 h"), "team")
    assert (d.requests, d.priced) == (3, 2)  # the error has no cost; the hit is priced at 0
    assert d.cost_usd == pytest.approx(0.01 + CHECK_COST)
    assert d.check_cost_usd == pytest.approx(CHECK_COST)
    assert d.cost_per_1k_usd == pytest.approx(1000 * (0.01 + CHECK_COST) / 2)
    top = d.top.set_index("group").loc["search"]
    assert (top["requests"], top["cost_usd"]) == (3, pytest.approx(0.01 + CHECK_COST))
    assert d.series["cost_usd"].sum() == pytest.approx(0.01 + CHECK_COST)
    # the totals come with the top spenders (window sums over every group): a window with no row has none
    empty = cost(ctx, Filters(since=NOW + 3600, until=NOW + 7200), "team")
    assert (empty.requests, empty.priced, empty.cost_usd, empty.check_cost_usd, len(empty.top)) == (0, 0, 0, 0, 0)


def test_cache_page_shows_the_checks_cost_beside_the_savings(ctx):
    d = cache(ctx, Filters(window="1 h"))
    assert (d.cacheable, d.hits, d.semantic_hits) == (3, 1, 1)
    assert d.hit_rate == pytest.approx(1 / 3)
    assert (d.checks, d.check_cost_usd) == (1, pytest.approx(CHECK_COST))
    assert d.net_saved_usd == pytest.approx(0.01 - CHECK_COST)
    by_group = d.saved_series.groupby("group")["usd"].sum()
    assert by_group["saved"] == pytest.approx(0.01) and by_group["checks' cost"] == pytest.approx(CHECK_COST)
    assert d.series.groupby("group")["rate"].max()["hit_rate"] == pytest.approx(1 / 3)
    assert d.by_route.set_index("route").loc["chat", "requests"] == 3


def test_routing_policy_and_guardrails_pages_count_client_requests(ctx):
    r = routing(ctx, Filters(window="1 h"))
    assert r.routes.set_index("route").loc["chat", "requests"] == 3
    assert r.shares["planned_first"].sum() == 3
    assert r.targets.set_index("target").loc["openai/gpt-4o-mini", "attempts"] == 2
    assert policy(ctx, Filters(window="1 h")).served.set_index("policy_version").loc["v1", "requests"] == 3
    assert guardrails(ctx, Filters(window="1 h")).requests == 3
