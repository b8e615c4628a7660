"""Outside-style: a budget for each team and one named for a team, in the same window.

By hand (`{scope: team, usd: 0.02, window: day}` and `{scope: team, name: search, usd: 0.05,
window: day}`): team search was refused at $0.02 ("team 'search' daily budget of $0.02 is
exhausted"), while `/metrics` had two series with the same labels
(`llmgw_budget_limit_usd{mode="hard",scope="team",who="search",window="day"}` 0.02 and 0.05 —
not valid exposition: Prometheus keeps one of them) and the budgets page showed search with a
$0.05 limit. Expected: one series per label set, the limit that refuses first.
"""

from __future__ import annotations

import httpx
import openai
from conftest import policy_for, wait_for_rows


def test_one_series_per_budget_labels_with_the_binding_limit(make_gateway, upstream) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from llmgw_kernel.dashboard.budget_data import budgets
    from llmgw_kernel.dashboard.context import Context
    from llmgw_kernel.dashboard.filters import Filters

    limits = [{"scope": "team", "usd": 0.02, "window": "day"},
              {"scope": "team", "name": "search", "usd": 0.05, "window": "day"}]  # fmt: skip
    gw = make_gateway(policy_for(upstream.base_url, budgets={"limits": limits},
                                 pricing={"demo-echo": {"input_per_1m": 1.0, "output_per_1m": 1.0}}))  # fmt: skip
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hi"}], metadata={"team": "search"}
    )
    wait_for_rows(gw, "team = 'search'")
    text = httpx.get(f"{gw.url}/metrics", timeout=30).text
    for name in ("llmgw_budget_limit_usd", "llmgw_budget_spent_usd", "llmgw_budget_in_flight_usd"):
        family = next(f for f in text_string_to_metric_families(text) if f.name == name)
        labels = [tuple(sorted(s.labels.items())) for s in family.samples]
        assert len(labels) == len(set(labels)), (name, labels)
        search = [s.value for s in family.samples if s.labels["who"] == "search"]
        assert len(search) == 1, (name, search)
        if name == "llmgw_budget_limit_usd":
            assert search == [0.02], search
    ctx = Context(gw.data_dir, gateway_url=gw.url)
    try:
        rows = [r.budget for r in budgets(ctx, Filters(window="1 h")).budgets if r.budget.who == "search"]
    finally:
        ctx.close()
    assert [b.limit_usd for b in rows] == [0.02], rows
