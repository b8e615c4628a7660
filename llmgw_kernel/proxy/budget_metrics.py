"""Budget burn as Prometheus gauges, computed at scrape time from the admission state.

For every budget of the live policy, in its current calendar window:

- ``llmgw_budget_limit_usd{scope, who, window, mode}``: what the window allows;
- ``llmgw_budget_spent_usd{...}``: committed spend (settled requests);
- ``llmgw_budget_in_flight_usd{...}``: reserved by requests still being served.

``spent / limit`` is what an alert on a budget running out reads
(``deploy/prometheus/alerts.yml``). A budget named for one team or user is one series; a
budget for *each* team / user / key (no ``name``) has one series per subject with spend in the
window, the :data:`MAX_SUBJECTS` biggest spenders (bounded cardinality). Keys' own budgets
(``budget_usd`` on a virtual key) are not exported: per-key detail is on ``/v1/llmgw/key``.
Runs on the event loop with the rest of ``/metrics``, so it reads the state without a lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily

from ..decisions.limits import NANO

if TYPE_CHECKING:
    from .runtime import Gateway

MAX_SUBJECTS = 50  # series per "each subject" budget: the biggest spenders in the window
_LABELS = ["scope", "who", "window", "mode"]


class BudgetCollector:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily("llmgw_budget_limit_usd", "Budget per window (live policy)", labels=_LABELS)
        spent = GaugeMetricFamily("llmgw_budget_spent_usd", "Committed spend in the current window", labels=_LABELS)
        held = GaugeMetricFamily("llmgw_budget_in_flight_usd", "Reserved by requests in flight", labels=_LABELS)
        for labels, usd, committed, reserved in self.rows(time.time()):
            limit.add_metric(labels, usd)
            spent.add_metric(labels, committed)
            held.add_metric(labels, reserved)
        yield from (limit, spent, held)

    def rows(self, now: float) -> list[tuple[list[str], float, float, float]]:
        """(labels, limit, committed, reserved) per budget series, in USD."""
        gw = self.gw
        budgets = gw.snapshot.policy.budgets
        if budgets is None:
            return []
        limits = gw.limits
        out = []
        for b in budgets.limits:
            start, _ = limits.bounds(now, b.window)
            if b.scope == "global" or b.name is not None:
                subjects = [None if b.scope == "global" else b.name]
            else:
                seen = [(amount, key[1]) for key, amount in limits.committed.items()
                        if key[0] == b.scope and key[2] == b.window and key[3] == start]  # fmt: skip
                subjects = [who for _, who in sorted(seen, key=lambda s: (-s[0], str(s[1])))[:MAX_SUBJECTS]]
            for who in subjects:
                bucket = (b.scope, who, b.window, start)
                committed = limits.committed.get(bucket, 0) / NANO
                reserved = limits.reserved.get(bucket, 0) / NANO
                out.append(([b.scope, who or "", b.window, b.mode], b.usd, committed, reserved))
        return out
