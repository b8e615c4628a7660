"""Cache: hit rate and savings over time, per route and namespace, and the newest semantic
hits with their similarity (prompts shown only when bodies are logged) (``/cache``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.cache_data.cache`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn

from llmgw_kernel.dashboard.cache_data import CacheData, cache
from llmgw_kernel.dashboard.charts import SvgLines
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, page_frame, pct, usd
from llmgw_kernel.dashboard.html_table import HtmlTable, number

if TYPE_CHECKING:
    import pandas as pd

_FORMATS = {"hit_rate": number("{:.1%}"), "saved_usd": number("${:,.4f}")}
_SIMILARITY = {"similarity": number("{:.3f}"), "threshold": number("{:.3f}"), "margin": number("{:+.3f}")}

_LABELS = {"hit_rate": "hit rate", "semantic_rate": "semantic hit rate"}

#: the orders the semantic hits can be shown in; the first is the default: the hits nearest
#: their threshold (the likeliest wrong answers) first
ORDERS = ("nearest the threshold first", "farthest from it first", "newest first")


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
        # the spot-check of semantic hits: a plain HTML table too, shown nearest the threshold
        # first (the likeliest wrong answers); the order flips in the page, without a query
        self.semantic = HtmlTable("llmgw-semantic-hits", _SIMILARITY, long_text=("prompt", "source_prompt"))
        self.order = pn.widgets.RadioButtonGroup(options=list(ORDERS), value=ORDERS[0], margin=(5, 10))
        self.order.param.watch(self._show_semantic, "value")
        self._semantic: pd.DataFrame | None = None

        # the charts are static SVG (charts.SvgLines: no Bokeh figure; a bucket's values on hover)
        self.rates = SvgLines("Hit rate per bucket (share of cacheable requests)", "{:.1%}", None, _LABELS)
        self.saved = SvgLines("Saved per bucket, and what checking sampled hits cost (USD)", "${:,.4f}")

    def panes(self) -> list[Any]:
        return [
            self.kpis, _side_by_side(self.rates.pane, self.saved.pane),
            heading("Per route and namespace"), self.by_route.pane,
            pn.Row(heading("Newest semantic hits (prompts only when bodies are logged)"), self.order, align="end"),
            self.semantic.pane,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> CacheData:
        return cache(ctx, filters)

    def show(self, data: CacheData) -> None:
        self.kpis.object = _kpis(data)
        self.rates.update(data.series, "rate", data.buckets)
        self.saved.update(data.saved_series, "usd", data.buckets)
        self.by_route.update(data.by_route)
        self._semantic = data.semantic
        self._show_semantic()

    def _show_semantic(self, *_: Any) -> None:
        if self._semantic is not None:
            self.semantic.update(semantic_rows(self._semantic, self.order.value))


def _side_by_side(*charts: pn.pane.HTML) -> pn.FlexBox:
    """Charts side by side while each is at least 480 px wide, else one under the other: an SVG
    chart scales with its width, text and all (at 400 px its 10 px labels would be 6.7 px)."""
    for chart in charts:
        chart.styles = {"flex": "1 1 480px"}
        chart.min_width = 480
    return pn.FlexBox(*charts, flex_wrap="wrap", sizing_mode="stretch_width")


def semantic_rows(hits: pd.DataFrame, order: str) -> pd.DataFrame:
    """The newest semantic hits in ``order`` (:data:`ORDERS`), with their ``margin`` above the
    threshold (similarity - threshold) beside the similarity; the query gives them newest first."""
    rows = hits.assign(margin=hits["similarity"] - hits["threshold"])
    columns = list(hits.columns)
    at = columns.index("threshold") + 1 if "threshold" in columns else len(columns)
    rows = rows[[*columns[:at], "margin", *columns[at:]]]
    if order == ORDERS[2]:
        return rows
    # a stable sort keeps the newest first among equal margins; a hit without one goes last
    return rows.sort_values("margin", ascending=order == ORDERS[0], kind="stable", na_position="last")


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
