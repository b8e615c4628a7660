"""Outside-style: the budgets page when a budget for each team covers many teams.

By hand (a $0.02/day budget for each team, 60+ teams seen): the budgets page listed the live
budgets in alphabetical order and charted the first 8 of them — teams named `0000…`, `analytics`,
`burner` — while `search`, exhausted and refusing requests, was neither in the burn-down nor near
the top of the table. Expected: the budgets nearest to running out (the most used share of the
limit) first in the table and in the chart.

A real `llmgw serve` with a budget for each team; its /metrics is the live state, its log the
burn-down's; the page's own query (`budget_data.budgets`) over both.
"""

from __future__ import annotations

import time

import openai
from conftest import policy_for, wait_for_rows

TEAMS = [f"a-team-{i:02d}" for i in range(10)]


def test_the_most_used_budgets_come_first_and_are_charted(make_gateway, upstream) -> None:
    from llmgw_kernel.dashboard.budget_data import MAX_CHARTED, budgets, label
    from llmgw_kernel.dashboard.context import Context
    from llmgw_kernel.dashboard.filters import Filters

    policy = policy_for(upstream.base_url, budgets={"limits": [{"scope": "team", "usd": 1.0, "window": "day"}]},
                        pricing={"demo-echo": {"input_per_1m": 1000.0, "output_per_1m": 1000.0}})  # fmt: skip
    gw = make_gateway(policy)
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    for team in [*TEAMS, *["zz-heavy"] * 12]:  # each request ~$0.01-0.02: zz-heavy uses the most
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": f"hi {team} {time.time()}"}],
                                       metadata={"team": team})  # fmt: skip
    wait_for_rows(gw, "team IS NOT NULL", n=len(TEAMS) + 12)
    ctx = Context(gw.data_dir, gateway_url=gw.url)
    try:
        data = budgets(ctx, Filters(window="1 h"))
    finally:
        ctx.close()
    assert data.live and len(data.budgets) == len(TEAMS) + 1, data.budgets
    first = data.budgets[0].budget
    assert first.who == "zz-heavy", [label(r.budget) for r in data.budgets]
    used = [(r.budget.spent_usd + r.budget.in_flight_usd) / r.budget.limit_usd for r in data.budgets]
    assert used == sorted(used, reverse=True), used
    charted = list(dict.fromkeys(data.burndown["group"]))
    assert len(charted) == MAX_CHARTED and charted[0] == label(first), charted
