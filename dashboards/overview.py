"""Overview: requests, errors by reason and by provider/target, upstream failures and how many
retries and fallbacks rescued, latency and time-to-first-token percentiles, tokens, cost,
cache savings, and the recent requests (filterable by outcome) over the shared filters.

A view only: every number comes from :class:`llmgw_kernel.dashboard.OverviewStore`.
``llmgw serve`` mounts it at ``/`` and ``/overview``; on its own, with the log directory in
``LLMGW_DATA_DIR``::

    LLMGW_DATA_DIR=llmgw-data panel serve dashboards/overview.py
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import cached_property
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, Range1d
from bokeh.palettes import Category10
from bokeh.plotting import figure

from llmgw_kernel.dashboard import ERROR_OUTCOMES, Overview
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import PRESETS, Filters
from llmgw_kernel.dashboard.frame import ALL, PageSpec, heading, kpi_html, kpi_pane, page_frame
from llmgw_kernel.dashboard.html_table import HtmlTable, number

REFRESH_MS = 5000
_OUTCOME_COLORS = dict(zip(ERROR_OUTCOMES, Category10[10][1:], strict=False))
_RECENT_FORMATS = {"latency_ms": number("{:,.1f}"), "ttft_ms": number("{:,.1f}")}


def spec() -> PageSpec:
    """The overview page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/overview", "Overview · traffic", _Body, REFRESH_MS)


def page(ctx: Context, refresh_ms: int = REFRESH_MS) -> pn.viewable.Viewable:
    """Build the overview page for one browser session."""
    return page_frame(ctx, replace(spec(), refresh_ms=refresh_ms))


class _Body:
    """KPIs, four time series, errors by reason and by target, recent requests by outcome."""

    def __init__(self) -> None:
        self.kpis = kpi_pane()
        self.outcome = pn.widgets.Select(label="Outcome", options=[ALL, "ok", *ERROR_OUTCOMES], value=ALL, width=160)
        # plain HTML tables, not Tabulators: ~0.3 browser CPU s less each (html_table.py)
        self.by_reason = HtmlTable("llmgw-by-reason", long_text=("example",), max_height=300)
        self.by_target = HtmlTable("llmgw-by-target", {"failure_rate": number("{:.1%}")}, max_height=300)
        self.recent = HtmlTable("llmgw-recent", _RECENT_FORMATS, long_text=("error_message",), max_height=720)

    @cached_property
    def charts(self) -> _Charts:
        """Made with the panes, after the queries started (page_frame): ~0.1 CPU s of Bokeh models."""
        return _Charts()

    def controls(self) -> list[Any]:
        return [self.outcome]

    def panes(self) -> list[Any]:
        return [
            self.kpis,
            pn.GridBox(*self.charts.panes(), ncols=2, sizing_mode="stretch_width"),
            pn.Row(
                pn.Column(heading("Errors by reason"), self.by_reason.pane, sizing_mode="stretch_width"),
                pn.Column(
                    heading("Upstream attempts by provider / target"), self.by_target.pane, sizing_mode="stretch_width"
                ),
                sizing_mode="stretch_width",
            ),
            pn.Row(heading("Most recent requests"), self.outcome, align="end"),
            self.recent.pane,
        ]

    def query(self, ctx: Context, filters: Filters) -> Overview:
        outcome = None if self.outcome.value == ALL else self.outcome.value
        return ctx.overview.overview(filters=filters, outcome=outcome)

    def show(self, data: Overview) -> None:
        self.kpis.object = _kpi_html(data)
        self.charts.update(data)
        self.by_reason.update(data.errors_by_reason)
        self.by_target.update(data.errors_by_target)
        self.recent.update(_recent_table(data))


class _Charts:
    """The four time series; their sources are updated in place on refresh."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(_empty_series())
        self.x_range = Range1d(0, 1)  # shared: the four charts pan and zoom together
        x = self.x_range
        self.requests = _figure("Requests / min", x)
        self.requests.vbar(x="t", top="requests_per_min", width=50_000, source=self.source, color="#1f77b4")
        self.errors = _figure("Errors / min by outcome", x)
        names = [f"errors_per_min_{o}" for o in ERROR_OUTCOMES]
        self.error_bars = self.errors.vbar_stack(
            names, x="t", width=50_000, source=self.source,
            color=[_OUTCOME_COLORS[o] for o in ERROR_OUTCOMES], legend_label=list(ERROR_OUTCOMES),
        )  # fmt: skip
        self.latency = _figure("Latency (ms)", x)
        self.tokens = _figure("Tokens / min", x)
        for fig, column, label, color in (
            (self.latency, "p50_ms", "p50", "#2ca02c"),
            (self.latency, "p95_ms", "p95", "#d62728"),
            (self.tokens, "prompt_tokens_per_min", "prompt", "#1f77b4"),
            (self.tokens, "completion_tokens_per_min", "completion", "#ff7f0e"),
        ):
            fig.line(x="t", y=column, source=self.source, legend_label=label, color=color)
            if fig is self.latency:  # NaN where a bucket had no request: show lone points
                fig.scatter(x="t", y=column, source=self.source, legend_label=label, color=color, size=4)
        for fig in (self.errors, self.latency, self.tokens):
            legend = fig.legend[0]
            legend.orientation = "horizontal"
            legend.label_text_font_size = "8pt"
            legend.padding = legend.spacing = 2
            fig.add_layout(legend, "above")
        self.bars = [self.requests.renderers[0], *self.error_bars]

    def panes(self) -> list[pn.pane.Bokeh]:
        figures = (self.requests, self.errors, self.latency, self.tokens)
        return [pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in figures]

    def update(self, data: Overview) -> None:
        width = data.window.bucket_s * 1000 * 0.8
        for renderer in self.bars:
            if renderer.glyph.width != width:
                renderer.glyph.width = width
        self.source.data = {c: data.series[c].to_numpy() for c in data.series.columns}
        if len(data.series):
            start = data.series["t"].iloc[0].value / 1e6  # ms since the epoch, as Bokeh wants
            end = data.series["t"].iloc[-1].value / 1e6 + data.window.bucket_s * 1000
            if (self.x_range.start, self.x_range.end) != (start, end):
                self.x_range.update(start=start, end=end)


def _figure(title: str, x_range: Range1d) -> Any:
    fig = figure(
        title=title, x_axis_type="datetime", x_range=x_range, height=240, sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,reset", toolbar_location="right",
    )  # fmt: skip
    fig.add_tools(HoverTool(tooltips=[("UTC", "@t{%H:%M}"), ("value", "$y{0.0}")], formatters={"@t": "datetime"}))
    fig.xaxis.axis_label = "UTC"
    fig.y_range.start = 0
    return fig


def _empty_series() -> dict[str, list]:
    cols = ["t", "requests_per_min", "p50_ms", "p95_ms", "prompt_tokens_per_min", "completion_tokens_per_min"]
    return {c: [] for c in cols + [f"errors_per_min_{o}" for o in ERROR_OUTCOMES]}


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def _kpi_html(data: Overview) -> str:
    h = data.headline
    label = f"last {data.window.label}" if data.window.label in PRESETS else data.window.label
    n = h.requests or 1
    cards = [
        ("requests", f"{h.requests:,}", f"requests · {label}", False),
        ("errors", f"{h.errors:,}", f"errors ({h.error_rate:.1%})", h.errors > 0),
        (
            "upstream_failed",
            f"{h.upstream_failed:,}",
            f"upstream failures ({h.upstream_failed / n:.1%} of requests)",
            h.upstream_failed > h.rescued,
        ),
        ("rescued", f"{h.rescue_rate:.1%}", f"rescued by retry/fallback ({h.rescued:,})", False),
        ("fallback_rate", f"{h.fell_back / n:.1%}", f"fallback rate ({h.fell_back:,})", False),
        ("retry_rate", f"{h.retried / n:.1%}", f"retry rate ({h.retried:,})", False),
        ("p50", _fmt_ms(h.p50_ms), "latency p50", False),
        ("p95", _fmt_ms(h.p95_ms), "latency p95", False),
        ("p99", _fmt_ms(h.p99_ms), "latency p99", False),
        ("ttft", _fmt_ms(h.ttft_p50_ms), "time to first token p50 (streams)", False),
        ("ttft_p95", _fmt_ms(h.ttft_p95_ms), "time to first token p95", False),
        ("prompt_tokens", f"{h.prompt_tokens:,}", "prompt tokens", False),
        ("completion_tokens", f"{h.completion_tokens:,}", "completion tokens", False),
        ("cost", f"${h.cost_usd:,.4f}", "cost (priced targets)" + _checks_note(h), False),
        ("cache_hits", f"{h.cache_hits:,}", f"cache hits ({h.hit_rate:.1%}; {h.semantic_hits:,} semantic)", False),
        ("saved", f"${h.saved_usd:,.4f}", "saved by the cache", False),
    ]
    return kpi_html(cards)


def _checks_note(h: Any) -> str:
    """The share of the cost spent checking sampled semantic hits (not requests), when any."""
    return f"; ${h.check_cost_usd:,.4f} of it in {h.checks:,} cache checks" if h.checks else ""


def _recent_table(data: Overview) -> Any:
    df = data.recent.copy()
    if len(df):
        df["ts"] = df["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3]
    else:
        df["ts"] = df["ts"].astype(str)
    return df


if pn.state.served:
    pn.extension("tabulator")
    page(Context(os.environ.get("LLMGW_DATA_DIR", "llmgw-data"))).servable(title="llmgw · overview")
