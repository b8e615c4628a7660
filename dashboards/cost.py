"""Cost: spend by team / key / user / model / provider / route over time, cost per 1k
requests, the top spenders, and what the cache and routing saved (``/cost``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.cost_data.cost`.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from llmgw_kernel.dashboard.charts import SvgLines
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.cost_data import GROUPS, CostData, cost
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, page_frame, usd
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.svg_chart import alone

_MONEY = number("${:,.4f}")
_FORMATS = {"cost_usd": _MONEY, "cost_per_1k_usd": _MONEY, "share": number("{:.1%}")}


def spec() -> PageSpec:
    """This page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/cost", "Cost", _Body)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


class _Body:
    def __init__(self) -> None:
        self.kpis = kpi_pane()
        self.group = pn.widgets.RadioButtonGroup(options=list(GROUPS), value="team", margin=(5, 10))
        # a plain HTML table, not a Tabulator: ~0.3 browser CPU s less (html_table.py); its rows
        # come sorted by spend, the query's top 50 (cost_data.cost)
        self.top = HtmlTable("llmgw-top-spenders", _FORMATS, max_height=480)
        # static SVG (charts.SvgLines: no Bokeh figure; a bucket's values on hover)
        self.chart = SvgLines("Spend per bucket (USD), top groups", "${:,.4f}", max_width=900)

    def controls(self) -> list[Any]:
        return [self.group]

    def panes(self) -> list[Any]:
        return [self.kpis, pn.Row(heading("Spend by"), self.group, align="end"), alone(self.chart.pane),
                heading("Top spenders"), self.top.pane]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> CostData:
        return cost(ctx, filters, self.group.value)

    def show(self, data: CostData) -> None:
        self.kpis.object = _kpis(data)
        self.chart.update(data.series, "cost_usd", data.buckets)
        self.top.update(data.top)


def _kpis(d: CostData) -> str:
    return kpi_html([
        ("cost", usd(d.cost_usd), f"spent ({d.priced:,} priced of {d.requests:,} requests{_checks(d)})", False),
        ("cost_per_1k", usd(d.cost_per_1k_usd), "cost per 1k priced requests", False),
        ("cache_saved", usd(d.cache_saved_usd), "saved by the cache", False),
        ("routing_saved", usd(d.routing_saved_usd), "saved by routing (vs each route's dearest target)", False),
    ])  # fmt: skip


def _checks(d: CostData) -> str:
    """The spend that checked sampled semantic hits (charged to the hits' owners), when any."""
    return f"; {usd(d.check_cost_usd)} of it checking cached answers" if d.check_cost_usd else ""
