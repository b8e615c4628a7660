"""A target skipped by its open breaker is not an upstream attempt — in the log's per-request
scalars and the overview's and routing page's per-request figures (issue 14).

On a real gateway, a route's breaker opens after one real 503: every later request logs an
attempts entry ``error: "skipped: circuit open ..."`` for the target it did not call and is
served by the next one; a one-target route's breaker opens after one real 500 and later
requests are refused (no target). Before, the writer's ``attempt_count`` counted the skips and
``first_attempt_failed`` read a skip as a failed first attempt, so the routing page showed the
first route's requests as upstream failures (~80% once the breaker was open) rescued by
fallbacks, though its upstream was called once. Now: upstream failures and rescues count the
calls made (DuckDB over the attempts lists, skips passed over); a request served by a target
other than the first planned — its first skipped or failed — is a fallback.
"""

from __future__ import annotations

import contextlib

import openai
from conftest import policy_for, wait_for_rows

from llmgw_kernel import open_log
from llmgw_kernel.dashboard import OverviewStore
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.routing_data import routing

# DuckDB over the lists: the attempts made (a skipped entry's error starts "skipped:")
MADE = "list_filter(attempts, lambda x: NOT coalesce(starts_with(x.error, 'skipped:'), false))"
FAILED = f"len(list_filter({MADE}, lambda x: x.error IS NOT NULL)) > 0"
FELL_BACK = "coalesce(target <> plan[1], false)"


def test_breaker_skips_are_not_upstream_attempts_per_request(make_gateway, upstream) -> None:
    policy = policy_for(upstream.base_url)
    for route in ("fallback", "broken-500"):
        policy["routes"][route]["breaker"] = {"failures": 1, "window_s": 600, "cooldown_s": 3600}
    gw = make_gateway(policy)
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    for i in range(6):
        client.chat.completions.create(model="fallback", messages=[{"role": "user", "content": f"q{i}"}])
    for i in range(3):
        with contextlib.suppress(openai.APIError):  # a 500, then refused: no target (logged all the same)
            client.chat.completions.create(model="broken-500", messages=[{"role": "user", "content": f"b{i}"}])
    rows = wait_for_rows(gw, "route IN ('fallback', 'broken-500')", n=9)
    assert [r["outcome"] for r in rows if r["route"] == "broken-500"] == ["upstream_error", "no_target", "no_target"]
    skips = sum(1 for r in rows for a in r["attempts"] or [] if (a["error"] or "").startswith("skipped:"))
    assert skips >= 4 + 2, rows  # both breakers opened after their first failure

    # the log's scalars: the attempts made, as DuckDB finds them in the lists
    con = open_log(gw.data_dir)
    try:
        want = con.sql(f"""SELECT request_id, CAST(coalesce(len({MADE}), 0) AS SMALLINT),
                                  coalesce({MADE}[1].error IS NOT NULL, false)
                           FROM requests ORDER BY request_id""").fetchall()  # fmt: skip
        got = con.sql("SELECT request_id, attempt_count, first_attempt_failed FROM requests ORDER BY request_id")
        assert got.fetchall() == want
        by_route = dict(
            con.sql(f"""SELECT route, [count(*), count(*) FILTER (WHERE outcome <> 'ok'), count(*) FILTER (WHERE {FAILED}),
                               count(*) FILTER (WHERE {FAILED} AND outcome = 'ok'), count(*) FILTER (WHERE {FELL_BACK})]
                        FROM requests GROUP BY 1""").fetchall()  # fmt: skip
        )
    finally:
        con.close()
    # fallback: one upstream failure (the first request's 503), rescued; all 6 served by the second target
    assert by_route == {"fallback": [6, 0, 1, 1, 6], "broken-500": [3, 3, 1, 0, 0]}

    ctx = Context(gw.data_dir, gateway_url=gw.url)
    try:
        data = routing(ctx, Filters(window="1 h"))
        h = OverviewStore(ctx.data_dir, queries=ctx.queries).overview(filters=Filters(window="1 h")).headline
    finally:
        ctx.close()
    routes = data.routes.set_index("route")
    for route, figures in by_route.items():
        r = routes.loc[route]
        assert [int(r[c]) for c in ("requests", "errors", "upstream_failed", "rescued", "fell_back")] == figures, route
    assert routes.loc["fallback", "upstream_failure_rate"] == 1 / 6 and routes.loc["fallback", "fallback_rate"] == 1.0
    assert (h.requests, h.upstream_failed, h.rescued, h.fell_back) == (9, 2, 1, 6)
