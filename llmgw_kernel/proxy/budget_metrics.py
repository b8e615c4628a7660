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

One process reads its own in-memory state (on the event loop with the rest of ``/metrics``, so
without a lock). With shared state (Redis) that would be one replica's share, so every process
reports the shared figures instead: before ``/metrics`` renders, :meth:`BudgetCollector.refresh`
reads them from Redis — at most once per :data:`REFRESH_S` per process, a fixed number of calls
(one per series, plus one per "each subject" budget to rank the spenders), never on a request's
path. While Redis does not answer, the gauges show this process's view, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily

from ..decisions.limits import NANO

if TYPE_CHECKING:
    from ..policy.model import BudgetLimit
    from ..state.admission import SharedLimits
    from .runtime import Gateway

MAX_SUBJECTS = 50  # series per "each subject" budget: the biggest spenders in the window
REFRESH_S = 5.0  # the shared figures are read from Redis at most this often, when /metrics is read
_PUBLISHED = 4 * MAX_SUBJECTS  # a process's own biggest spenders it adds to the shared ranking
_LABELS = ["scope", "who", "window", "mode"]

Row = tuple[list[str], float, float, float]  # labels, limit, committed, reserved (USD)


class BudgetCollector:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._shared: tuple[float, list[Row]] | None = None  # (read at, rows) from Redis
        self._reading: asyncio.Future | None = None
        gw.metrics.on_scrape(self.refresh)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily("llmgw_budget_limit_usd", "Budget per window (live policy)", labels=_LABELS)
        spent = GaugeMetricFamily("llmgw_budget_spent_usd", "Committed spend in the current window", labels=_LABELS)
        held = GaugeMetricFamily("llmgw_budget_in_flight_usd", "Reserved by requests in flight", labels=_LABELS)
        now = time.time()
        shared = self._shared
        fresh = shared is not None and self.gw.shared is not None and now - shared[0] < 2 * REFRESH_S
        for labels, usd, committed, reserved in _binding(shared[1] if fresh and shared else self.rows(now)):
            limit.add_metric(labels, usd)
            spent.add_metric(labels, committed)
            held.add_metric(labels, reserved)
        yield from (limit, spent, held)
        state = GaugeMetricFamily(
            "llmgw_admission_state_entries", "This process's admission state: entries held", labels=["kind"]
        )
        lim = self.gw.limits
        state.add_metric(["spend_buckets"], len(lim.committed))
        state.add_metric(["rate_windows"], len(lim.windows))
        state.add_metric(["in_flight"], len(lim.flights))
        yield state

    def rows(self, now: float) -> list[Row]:
        """(labels, limit, committed, reserved) per budget series, in USD, as this process sees them."""
        limits = self.gw.limits
        out = []
        for b, start in self._budgets(now):
            for who in _named(b) or self._spenders(b, start, MAX_SUBJECTS):
                bucket = (b.scope, who, b.window, start)
                committed = limits.committed.get(bucket, 0) / NANO
                reserved = limits.reserved.get(bucket, 0) / NANO
                out.append(([b.scope, who or "", b.window, b.mode], b.usd, committed, reserved))
        return out

    async def refresh(self) -> None:
        """With shared state, read every series' figures from Redis unless they were read less
        than :data:`REFRESH_S` ago (concurrent scrapes share one read). Redis not answering
        leaves the gauges on this process's view until the next read."""
        shared = self.gw.shared
        now = time.time()
        if shared is None or (self._shared is not None and now - self._shared[0] < REFRESH_S):
            return
        if self._reading is not None:
            await asyncio.shield(self._reading)
            return
        self._reading = asyncio.get_running_loop().create_future()
        from ..state.client import StateUnavailable

        try:
            self._shared = (now, await self._shared_rows(shared.limits, now))
        except StateUnavailable:
            self._shared = None
        finally:
            self._reading.set_result(None)
            self._reading = None

    async def _shared_rows(self, state: SharedLimits, now: float) -> list[Row]:
        series: list[tuple[BudgetLimit, str | None, tuple]] = []
        ranked: dict[tuple[str, str, float], list[str]] = {}
        for b, start in self._budgets(now):
            subjects = _named(b)
            if subjects is None:
                rank = (b.scope, b.window, start)
                if rank not in ranked:
                    mine = self._spenders(b, start, _PUBLISHED)
                    ranked[rank] = await state.top_spenders(b.scope, b.window, start, mine, MAX_SUBJECTS)
                subjects = list(ranked[rank])
            series += [(b, who, (b.scope, who, b.window, start)) for who in subjects]
        spends = await state.bucket_spends([bucket for _, _, bucket in series])
        return [
            ([b.scope, who or "", b.window, b.mode], b.usd, c / NANO, r / NANO)
            for (b, who, _), (c, r) in zip(series, spends, strict=True)
        ]

    def _budgets(self, now: float) -> list[tuple[BudgetLimit, float]]:
        """The live policy's budgets, each with the start of its current window."""
        budgets = self.gw.snapshot.policy.budgets
        if budgets is None:
            return []
        return [(b, self.gw.limits.bounds(now, b.window)[0]) for b in budgets.limits]

    def _spenders(self, b: BudgetLimit, start: float, n: int) -> dict[str, int]:
        """The ``n`` subjects of ``b``'s scope that spent most in the window, in this process's
        view: subject -> committed nano-dollars, biggest first."""
        seen = [(amount, key[1]) for key, amount in self.gw.limits.committed.items()
                if key[0] == b.scope and key[2] == b.window and key[3] == start and key[1] is not None]  # fmt: skip
        return {who: amount for amount, who in sorted(seen, key=lambda s: (-s[0], str(s[1])))[:n]}


def _binding(rows: list[Row]) -> list[Row]:
    """One row per label set: two budgets can name the same subject, window and mode — a budget
    for each team and one named for a team, both applying to it — and two series with the same
    labels are not valid exposition (Prometheus keeps one at random, the dashboards took the larger
    limit: a team refused at $20 showed a $50 budget). The one kept is the smaller limit, the one
    that refuses first; the spend is the same bucket's."""
    kept: dict[tuple[str, ...], Row] = {}
    for row in rows:
        key = tuple(row[0])
        if key not in kept or row[1] < kept[key][1]:
            kept[key] = row
    return list(kept.values())


def _named(b: BudgetLimit) -> list[str | None] | None:
    """The one subject of a global or named budget (None: global); None for an "each subject" budget."""
    if b.scope == "global" or b.name is not None:
        return [None if b.scope == "global" else b.name]
    return None
