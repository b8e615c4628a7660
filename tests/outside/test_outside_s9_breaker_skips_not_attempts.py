"""Outside-style: a route's breaker opens; the routing page's per-target figures afterwards.

By hand (route analyst, breaker `failures: 2`): after two real 503s the breaker opened and every
later request logged an attempts entry `error: "skipped: circuit open (… of cooldown left)"`,
latency 0, for the target it did not call. The routing page then showed that target with
"200 attempts, 190 failed, 95.0%, p50 0.0 ms" (and the overview's attempts by target the same),
while the upstream had been called ~12 times and failed twice (`llmgw_upstream_errors_total` 2).
docs/routing.md: skipped targets are not attempts. Expected: per target, only the calls made.
"""

from __future__ import annotations

import openai
from conftest import policy_for, wait_for_rows


def test_a_target_skipped_by_its_open_breaker_is_not_an_attempt(make_gateway, upstream) -> None:
    from llmgw_kernel.dashboard.context import Context
    from llmgw_kernel.dashboard.filters import Filters
    from llmgw_kernel.dashboard.routing_data import routing

    policy = policy_for(upstream.base_url)
    policy["routes"]["fallback"]["breaker"] = {"failures": 1, "window_s": 600, "cooldown_s": 3600}
    gw = make_gateway(policy)
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    for i in range(6):
        client.chat.completions.create(model="fallback", messages=[{"role": "user", "content": f"q{i}"}])
    rows = wait_for_rows(gw, "route = 'fallback'", n=6)
    skipped = sum(1 for r in rows for a in r["attempts"] if (a["error"] or "").startswith("skipped:"))
    assert skipped >= 4, rows  # the breaker opened after the first failure
    ctx = Context(gw.data_dir, gateway_url=gw.url)
    try:
        targets = routing(ctx, Filters(window="1 h")).targets.set_index("target")
    finally:
        ctx.close()
    failing = targets.loc["local/status-503"]
    assert (failing["attempts"], failing["failed"]) == (6 - skipped, 6 - skipped), targets
    assert targets.loc["other/gpt-4o"]["attempts"] == 6 and targets.loc["other/gpt-4o"]["failed"] == 0, targets
