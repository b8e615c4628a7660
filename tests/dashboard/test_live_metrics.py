"""The dashboards' reading of the gateway's ``/metrics`` (dashboard/live.py ``parse_metrics``)
when ``llmgw serve --workers N`` labels every sample with its worker: circuit transitions add
up over the workers, a budget is one budget (each worker's view of it; the largest shown)."""

from __future__ import annotations

from llmgw_kernel.dashboard.live import parse_metrics

TEXT = """\
# HELP llmgw_circuit_transitions_total Circuit breaker transitions
# TYPE llmgw_circuit_transitions_total counter
llmgw_circuit_transitions_total{worker="0",route="chat",target="demo/a",to="open"} 2.0
llmgw_circuit_transitions_total{worker="1",route="chat",target="demo/a",to="open"} 3.0
# HELP llmgw_budget_spent_usd Spend in the budget's current window
# TYPE llmgw_budget_spent_usd gauge
llmgw_budget_spent_usd{worker="0",scope="team",who="search",window="day",mode="hard"} 0.4
llmgw_budget_spent_usd{worker="1",scope="team",who="search",window="day",mode="hard"} 0.7
# HELP llmgw_budget_limit_usd The budget
# TYPE llmgw_budget_limit_usd gauge
llmgw_budget_limit_usd{worker="0",scope="team",who="search",window="day",mode="hard"} 1.0
llmgw_budget_limit_usd{worker="1",scope="team",who="search",window="day",mode="hard"} 1.0
"""


def test_workers_samples_add_up_for_transitions_and_not_for_budgets() -> None:
    transitions, budgets = parse_metrics(TEXT)
    assert transitions == {("chat", "demo/a", "open"): 5.0}
    [budget] = budgets
    assert (budget.limit_usd, budget.spent_usd) == (1.0, 0.7)
