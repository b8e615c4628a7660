"""Routing: each route's upstream failures and how many retries and fallbacks rescued,
target shares (planned and served), per-target error rates and latency, and the circuit
breakers' live state and transitions (``/routing``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.routing_data.routing`.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, note, page_frame, pct
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.routing_data import RoutingData, routing

_SHARE, _ONE = number("{:.1%}"), number("{:,.1f}")
_SHARES = ("error_rate", "upstream_failure_rate", "rescue_rate", "fallback_rate", "planned_share", "served_share",
           "failure_rate")  # fmt: skip
_FORMATS = {**dict.fromkeys(_SHARES, _SHARE), "p50_ms": _ONE, "p95_ms": _ONE}


def spec() -> PageSpec:
    """This page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/routing", "Routing", _Body)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


class _Body:
    def __init__(self) -> None:
        self.kpis = kpi_pane()
        # plain HTML tables, not Tabulators: ~0.3 browser CPU s less each (html_table.py)
        self.routes = HtmlTable("llmgw-routes", _FORMATS)
        self.shares = HtmlTable("llmgw-shares", _FORMATS)
        self.targets = HtmlTable("llmgw-targets", _FORMATS)
        self.breakers = HtmlTable("llmgw-breakers")
        self.live = note()

    def panes(self) -> list[Any]:
        return [
            self.kpis, heading("Routes: upstream failures, rescues, errors"), self.routes.pane,
            heading("Target shares (first planned / served)"), self.shares.pane,
            heading("Per target: every upstream attempt"), self.targets.pane,
            heading("Circuit breakers (live)"), self.live, self.breakers.pane,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> RoutingData:
        return routing(ctx, filters)

    def show(self, data: RoutingData) -> None:
        self.kpis.object = _kpis(data)
        self.routes.update(data.routes)
        self.shares.update(data.shares)
        self.targets.update(data.targets)
        self.breakers.update(data.breakers)
        self.live.object = (
            ""
            if data.live
            else '<p class="note" data-live="unavailable">Live state unavailable: breaker states '
            "come from the gateway's /health and /metrics.</p>"
        )


def _kpis(d: RoutingData) -> str:
    r = d.routes
    n, failed, rescued = int(r["requests"].sum()), int(r["upstream_failed"].sum()), int(r["rescued"].sum())
    open_now = int((d.breakers["state"] != "closed").sum()) if len(d.breakers) else 0
    return kpi_html([
        ("routed", f"{n:,}", "routed requests", False),
        ("upstream_failure_rate", pct(failed / n if n else None), f"upstream failures ({failed:,})", failed > rescued),
        ("rescue_rate", pct(rescued / failed if failed else None), f"rescued by retry/fallback ({rescued:,})", False),
        ("breakers_open", f"{open_now:,}", "breakers not closed (live)", open_now > 0),
    ])  # fmt: skip
