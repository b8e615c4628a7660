"""Traffic overview: requests, errors, latency, tokens, cost and cache savings over the last 15 min / 1 h / 24 h.

A view only: every number comes from :class:`llmgw_kernel.dashboard.OverviewStore`.
``llmgw serve`` mounts it at ``/`` and ``/overview``; on its own, with the log directory in
``LLMGW_DATA_DIR``::

    LLMGW_DATA_DIR=llmgw-data panel serve dashboards/overview.py
"""

from __future__ import annotations

import html
import os
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, Range1d
from bokeh.palettes import Category10
from bokeh.plotting import figure

from llmgw_kernel.dashboard import DEFAULT_WINDOW, ERROR_OUTCOMES, WINDOWS, Overview, OverviewStore

ALL_ROUTES = "(all routes)"
REFRESH_MS = 5000

_CSS = """
.kpis { display: flex; flex-wrap: wrap; gap: 10px; }
.kpi { border: 1px solid #dde1e6; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.kpi-value { font-size: 1.6em; font-weight: 600; }
.kpi-label { color: #5f6b7a; font-size: 0.85em; }
.kpi.bad .kpi-value { color: #c0392b; }
"""
_OUTCOME_COLORS = dict(zip(ERROR_OUTCOMES, Category10[10][1:], strict=False))


def make_store(data_dir: str | os.PathLike[str]) -> OverviewStore:
    """The page's data store (one per server, shared by every session)."""
    return OverviewStore(data_dir)


def page(store: OverviewStore, refresh_ms: int = REFRESH_MS) -> pn.viewable.Viewable:
    """Build the overview page for one browser session."""
    window = pn.widgets.RadioButtonGroup(options=list(WINDOWS), value=DEFAULT_WINDOW)
    route = pn.widgets.Select(label="Route", options=[ALL_ROUTES], value=ALL_ROUTES, width=220)
    status = pn.pane.Markdown("", margin=(0, 10))
    kpis = pn.pane.HTML("", stylesheets=[_CSS], sizing_mode="stretch_width")
    charts = _Charts()
    table = pn.widgets.Tabulator(
        None, disabled=True, show_index=False, pagination="local", page_size=25,
        sizing_mode="stretch_width", layout="fit_data_fill",
        formatters=_number_formatters(),
    )  # fmt: skip

    def refresh(*_: Any) -> None:
        data = store.overview(window.value, None if route.value == ALL_ROUTES else route.value)
        route.options = [ALL_ROUTES, *sorted(set(data.routes) | ({route.value} - {ALL_ROUTES}))]
        kpis.object = _kpi_html(data)
        charts.update(data)
        table.value = _recent_table(data)
        status.object = f"as of {data.as_of:%H:%M:%S} UTC · refreshes every {refresh_ms // 1000} s"

    refresh()
    window.param.watch(refresh, "value")
    route.param.watch(refresh, "value")
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.add_periodic_callback(refresh, period=refresh_ms)
    return pn.Column(
        pn.Row(pn.pane.Markdown("## llmgw · traffic"), window, route, status, align="center"),
        kpis,
        pn.GridBox(*charts.panes(), ncols=2, sizing_mode="stretch_width"),
        pn.pane.Markdown("### Most recent requests"),
        table,
        sizing_mode="stretch_width",
    )


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
    label = html.escape(data.window.label)
    cards = [
        ("requests", f"{h.requests:,}", f"requests · last {label}", False),
        ("errors", f"{h.errors:,}", f"errors ({h.error_rate:.1%})", h.errors > 0),
        ("p50", _fmt_ms(h.p50_ms), "latency p50", False),
        ("p95", _fmt_ms(h.p95_ms), "latency p95", False),
        ("ttft", _fmt_ms(h.ttft_p50_ms), "time to first token p50 (streams)", False),
        ("prompt_tokens", f"{h.prompt_tokens:,}", "prompt tokens", False),
        ("completion_tokens", f"{h.completion_tokens:,}", "completion tokens", False),
        ("cost", f"${h.cost_usd:,.4f}", "cost (priced targets)", False),
        ("cache_hits", f"{h.cache_hits:,}", f"cache hits ({h.hit_rate:.1%}; {h.semantic_hits:,} semantic)", False),
        ("saved", f"${h.saved_usd:,.4f}", "saved by the cache", False),
    ]
    body = "".join(
        f'<div class="kpi{" bad" if bad else ""}" data-kpi="{key}">'
        f'<div class="kpi-value">{value}</div><div class="kpi-label">{text}</div></div>'
        for key, value, text, bad in cards
    )
    return f'<div class="kpis">{body}</div>'


def _recent_table(data: Overview) -> Any:
    df = data.recent.copy()
    if len(df):
        df["ts"] = df["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3]
    else:
        df["ts"] = df["ts"].astype(str)
    return df


def _number_formatters() -> dict[str, Any]:
    from bokeh.models.widgets.tables import NumberFormatter

    one = NumberFormatter(format="0,0.0")
    return {"latency_ms": one, "ttft_ms": one}


if pn.state.served:
    pn.extension("tabulator")
    page(make_store(os.environ.get("LLMGW_DATA_DIR", "llmgw-data"))).servable(title="llmgw · traffic")
