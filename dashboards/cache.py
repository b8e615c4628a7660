"""Cache: hit rate and savings over time, per route and namespace, and the newest semantic
hits with their similarity (prompts shown only when bodies are logged) (``/cache``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.cache_data.cache`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import panel as pn

from llmgw_kernel.dashboard.cache_data import CacheData, cache
from llmgw_kernel.dashboard.charts import GroupLines
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, page_frame, pct, table, usd
from llmgw_kernel.dashboard.html_table import HtmlTable, number

_FORMATS = {"hit_rate": number("{:.1%}"), "saved_usd": number("${:,.4f}")}


def spec() -> PageSpec:
    """This page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/cache", "Cache", _Body)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


class _Body:
    def __init__(self) -> None:
        self.kpis = kpi_pane()
        # a plain HTML table, not a Tabulator: ~0.3 browser CPU s less (html_table.py)
        self.by_route = HtmlTable("llmgw-cache-routes", _FORMATS, max_height=480)
        # the spot-check of semantic hits stays a Tabulator: sorting it by similarity (the
        # hits nearest the threshold first) is how an operator looks for wrong answers
        self.semantic = table(page_size=10, formatters=_formatters())

    # the figures are made with the panes, after the queries started (frame._open)
    @cached_property
    def rates(self) -> GroupLines:
        return GroupLines("Hit rate per bucket", "share of cacheable requests")

    @cached_property
    def saved(self) -> GroupLines:
        return GroupLines("Saved per bucket, and what checking sampled hits cost (USD)", "USD")

    def panes(self) -> list[Any]:
        return [
            self.kpis, pn.Row(self.rates.pane(), self.saved.pane(), sizing_mode="stretch_width"),
            heading("Per route and namespace"), self.by_route.pane,
            heading("Newest semantic hits (prompts only when bodies are logged)"), self.semantic,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> CacheData:
        return cache(ctx, filters)

    def show(self, data: CacheData) -> None:
        self.kpis.object = _kpis(data)
        self.rates.update(data.series, "rate")
        self.saved.update(data.saved_series, "usd")
        self.by_route.update(data.by_route)
        self.semantic.value = data.semantic


def _kpis(d: CacheData) -> str:
    return kpi_html([
        ("cacheable", f"{d.cacheable:,}", "requests on cached routes", False),
        ("hits", f"{d.hits:,}", "cache hits (exact + semantic)", False),
        ("hit_rate", pct(d.hit_rate), "hit rate", False),
        ("semantic_hits", f"{d.semantic_hits:,}", "semantic hits", False),
        ("saved", usd(d.saved_usd), "saved by the cache", False),
        ("check_cost", usd(d.check_cost_usd), f"spent checking {d.checks:,} sampled semantic hits", False),
        ("net_saved", usd(d.net_saved_usd), "saved, net of the checks", d.net_saved_usd < 0),
    ])  # fmt: skip


def _formatters() -> dict[str, Any]:
    from bokeh.models.widgets.tables import NumberFormatter

    return {
        "hit_rate": NumberFormatter(format="0.0%"), "saved_usd": NumberFormatter(format="$0,0.0000"),
        "similarity": NumberFormatter(format="0.000"), "threshold": NumberFormatter(format="0.000"),
    }  # fmt: skip
