"""Guardrails: verdicts by stage, check, rule, type and action; requests a check fired on
over time by action; the newest of them (``/guardrails``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.guardrail_data.guardrails`.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from llmgw_kernel.dashboard.charts import SvgLines
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, page_frame, pct
from llmgw_kernel.dashboard.guardrail_data import GuardrailData, guardrails
from llmgw_kernel.dashboard.html_table import HtmlTable
from llmgw_kernel.dashboard.svg_chart import alone


def spec() -> PageSpec:
    """This page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/guardrails", "Guardrails", _Body)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


class _Body:
    def __init__(self) -> None:
        self.kpis = kpi_pane()
        # plain HTML tables, not Tabulators: ~0.3 browser CPU s less each (html_table.py)
        self.verdicts = HtmlTable("llmgw-verdicts", max_height=480)
        self.recent = HtmlTable("llmgw-guardrail-recent", long_text=("verdicts",), max_height=480)
        # static SVG (charts.SvgLines: no Bokeh figure); a bucket's requests per action on hover
        self.chart = SvgLines("Requests with a verdict per bucket, by action", "{:,.0f}", max_width=900)

    def panes(self) -> list[Any]:
        return [self.kpis, heading("Verdicts by stage, check, rule, type and action"), self.verdicts.pane,
                alone(self.chart.pane), heading("Newest requests a check fired on"), self.recent.pane]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> GuardrailData:
        return guardrails(ctx, filters)

    def show(self, data: GuardrailData) -> None:
        self.kpis.object = _kpis(data)
        self.verdicts.update(data.verdicts)
        self.chart.update(data.series, "requests", data.buckets)
        self.recent.update(data.recent)


def _kpis(d: GuardrailData) -> str:
    return kpi_html([
        ("requests", f"{d.requests:,}", "requests in the window", False),
        ("fired", f"{d.fired:,}", f"with a guardrail verdict ({pct(d.fired / d.requests if d.requests else None)})",
         False),
        ("blocked", f"{d.blocked:,}", "blocked by a guardrail", d.blocked > 0),
    ])  # fmt: skip
