"""Cache: hit rate and savings over time, per route and namespace, and the newest semantic
hits with their similarity (prompts shown only when bodies are logged) (``/cache``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.cache_data.cache`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.palettes import Category10

from llmgw_kernel.dashboard.cache_data import CacheData, cache
from llmgw_kernel.dashboard.charts import set_if_changed
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, page_frame, pct, usd
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.svg_chart import Layer, chart_pane, chart_svg

_FORMATS = {"hit_rate": number("{:.1%}"), "saved_usd": number("${:,.4f}")}
_SIMILARITY = {"similarity": number("{:.3f}"), "threshold": number("{:.3f}"), "margin": number("{:+.3f}")}

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

        # the charts are static SVG (svg_chart: no Bokeh figure; a bucket's values on hover)
        self.rates, self.saved = chart_pane(), chart_pane()

    def panes(self) -> list[Any]:
        return [
            self.kpis, pn.Row(self.rates, self.saved, sizing_mode="stretch_width"),
            heading("Per route and namespace"), self.by_route.pane,
            pn.Row(heading("Newest semantic hits (prompts only when bodies are logged)"), self.order, align="end"),
            self.semantic.pane,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> CacheData:
        return cache(ctx, filters)

    def show(self, data: CacheData) -> None:
        self.kpis.object = _kpis(data)
        rates, saved = _chart_svgs(data)
        set_if_changed(self.rates, object=rates)
        set_if_changed(self.saved, object=saved)
        self.by_route.update(data.by_route)
        self._semantic = data.semantic
        self._show_semantic()

    def _show_semantic(self, *_: Any) -> None:
        if self._semantic is not None:
            self.semantic.update(semantic_rows(self._semantic, self.order.value))


def _chart_svgs(d: CacheData) -> tuple[str, str]:
    """The hit rates (none in a bucket without cacheable requests) and the savings beside the
    checks' cost (0 in a bucket without any), every bucket of the window."""
    start, width, n = d.buckets
    starts = start + width * np.arange(n, dtype=float)
    rates = chart_svg("Hit rate per bucket (share of cacheable requests)", starts, width,
                      _layers(d.series, "rate", starts, None), kind="lines", value_format="{:.1%}")  # fmt: skip
    saved = chart_svg("Saved per bucket, and what checking sampled hits cost (USD)", starts, width,
                      _layers(d.saved_series, "usd", starts, 0.0), kind="lines", value_format="${:,.4f}")  # fmt: skip
    return rates, saved


_LABELS = {"hit_rate": "hit rate", "semantic_rate": "semantic hit rate"}


def _layers(frame: pd.DataFrame, value: str, starts: np.ndarray, missing: float | None) -> list[Layer]:
    """One line per group of a long frame (``t``, ``group``, ``value``) over the buckets starting
    at ``starts`` (epoch s); a bucket the frame lacks is ``missing`` (None: no value, a gap)."""
    seconds = (frame["t"] - pd.Timestamp(0)).dt.total_seconds().to_numpy() if len(frame) else np.array([])
    layers = []
    for k, group in enumerate(dict.fromkeys(frame["group"])):
        rows = (frame["group"] == group).to_numpy()
        values = pd.Series(frame[value].to_numpy(dtype=float)[rows], index=seconds[rows]).reindex(starts)
        if missing is not None:
            values = values.fillna(missing)
        layers.append(Layer(_LABELS.get(group, group), Category10[10][k], values.to_numpy()))
    return layers


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
