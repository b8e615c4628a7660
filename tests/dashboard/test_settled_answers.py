"""Answers over a settled window are kept (the log only appends), live ones for ``ttl_s``;
the policy file's routes are parsed once per version of the file (real DuckDB log)."""

from __future__ import annotations

import pytest
from aiohttp import web
from fake_http import FakeServer

from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import SETTLE_S, Filters
from llmgw_kernel.dashboard.queries import MAX_SETTLED, LogQueries
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter

NOW = 1_800_000_000.0
POLICY = """
providers:
  openai: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: OPENAI_API_KEY}
routes:
"""
ROUTE = "  {name}:\n    targets:\n    - {{provider: openai, model: gpt-4o-mini}}\n"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def queries(tmp_path):
    writer = LogWriter(tmp_path)
    rec = RequestRecord("r1", NOW - 3000, "chat.completions")
    rec.route, rec.outcome, rec.status = "chat", "ok", 200
    writer.append(rec)
    writer.close()
    clock = Clock()
    q = LogQueries(tmp_path, ttl_s=2.0, clock=clock)
    yield q, clock
    q.close()


def _counting(calls: list[float]):
    def compute(con, now):
        calls.append(now)
        return con.execute("SELECT count(*) FROM requests").fetchone()[0]

    return compute


def test_a_settled_window_is_answered_once_a_live_one_every_ttl(queries):
    q, clock = queries
    settled = Filters(since=NOW - 3600, until=NOW - SETTLE_S - 1)
    live = Filters(since=NOW - 3600, until=NOW - 10)
    settled_calls: list[float] = []
    live_calls: list[float] = []
    for step in range(3):
        clock.now = NOW + step * 60
        assert q.answer(("n", settled), _counting(settled_calls), settled) == 1
        assert q.answer(("n", live), _counting(live_calls), live) == 1
    assert len(settled_calls) == 1  # kept across 2 min, far past ttl_s
    assert len(live_calls) == 3  # recomputed each time: rows may still arrive (it settles only at NOW + 110)
    clock.now = NOW + q.settled_ttl_s + 1
    q.answer(("n", settled), _counting(settled_calls), settled)
    assert len(settled_calls) == 2  # and not for ever


def test_settled_answers_are_bounded(queries):
    q, _ = queries
    calls: list[float] = []
    windows = [Filters(since=NOW - 7200 + i, until=NOW - 3600) for i in range(MAX_SETTLED + 5)]
    for w in windows:
        q.answer(("n", w), _counting(calls), w)
    assert len(q._settled) == MAX_SETTLED
    q.answer(("n", windows[-1]), _counting(calls), windows[-1])  # the newest is kept
    q.answer(("n", windows[0]), _counting(calls), windows[0])  # the oldest was dropped
    assert len(calls) == MAX_SETTLED + 5 + 1


def test_policy_routes_are_parsed_again_only_when_the_file_changes(tmp_path, monkeypatch):
    import llmgw_kernel.policy.load as load

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + ROUTE.format(name="chat"))
    parsed: list[object] = []
    real = load.load_policy
    monkeypatch.setattr(load, "load_policy", lambda path: parsed.append(path) or real(path))
    ctx = Context(tmp_path / "data", policy)
    try:
        assert ctx.routes() == ("chat",)
        assert ctx.routes() == ("chat",)
        assert len(parsed) == 1
        policy.write_text(POLICY + ROUTE.format(name="chat") + ROUTE.format(name="search"))
        assert ctx.routes() == ("chat", "search")
        assert len(parsed) == 2
    finally:
        ctx.close()


def test_budgets_stay_live_over_a_settled_window(tmp_path, queries):
    from llmgw_kernel.dashboard.budget_data import budgets
    from llmgw_kernel.dashboard.cost_data import cost

    q, clock = queries
    ctx = Context(tmp_path, queries=q)
    settled = Filters(since=NOW - 7200, until=NOW - 3600)
    budgets(ctx, settled)  # its burn-down and run-out forecast read the log up to now
    assert not q._settled
    cost(ctx, settled)
    assert len(q._settled) == 1


class _Gateway(FakeServer):
    """/health and /metrics of a gateway whose one circuit the test opens."""

    name = "fake-gateway"

    def __init__(self) -> None:
        super().__init__()
        self.state = "closed"

    def routes(self, app: web.Application) -> None:
        async def health(request: web.Request) -> web.Response:
            return web.json_response({"routes": ["chat"], "circuits": {"chat": {"openai/gpt-4o-mini": self.state}}})

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(text="")

        app.router.add_get("/health", health)
        app.router.add_get("/metrics", metrics)


def test_routing_keeps_a_settled_windows_figures_while_its_breakers_stay_live(tmp_path, queries):
    from llmgw_kernel.dashboard.live import LiveState
    from llmgw_kernel.dashboard.routing_data import routing

    q, clock = queries
    gateway = _Gateway().start()
    try:
        ctx = Context(tmp_path, queries=q)
        ctx.live = LiveState(gateway.base_url, ttl_s=0.0)  # a real HTTP read each time
        settled = Filters(since=NOW - 7200, until=NOW - 600)
        first = routing(ctx, settled)
        gateway.state = "open"
        clock.now += 60
        second = routing(ctx, settled)
        assert second.routes is first.routes  # the log's figures: one query (they cannot change)
        assert list(first.breakers["state"]) == ["closed"] and list(second.breakers["state"]) == ["open"]
    finally:
        gateway.stop()
