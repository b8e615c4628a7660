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

import pandas as pd
import panel as pn
from bokeh.palettes import Category10

from llmgw_kernel.dashboard import ERROR_OUTCOMES, Overview
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import PRESETS, Filters
from llmgw_kernel.dashboard.frame import ALL, PageSpec, heading, kpi_html, kpi_pane, page_frame
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.request_data import request_href
from llmgw_kernel.dashboard.svg_chart import Layer, chart_pane, chart_svg

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
        self.recent = HtmlTable(
            "llmgw-recent", _RECENT_FORMATS, long_text=("error_message",), max_height=720,
            links={"request_id": request_href},  # why did it end so: the request page
        )  # fmt: skip

    @cached_property
    def charts(self) -> _Charts:
        """Made with the panes, after the queries started (page_frame)."""
        return _Charts()

    def controls(self) -> list[Any]:
        return [self.outcome]

    def panes(self) -> list[Any]:
        return [
            self.kpis,
            # two a row; one a row on a narrow screen (an SVG scales its text with its width)
            pn.FlexBox(*self.charts.panes(), sizing_mode="stretch_width"),
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
    """The four time series as static SVG (svg_chart: no Bokeh figure; a bucket's values on hover)."""

    def __init__(self) -> None:
        self.requests, self.errors, self.latency, self.tokens = (chart_pane() for _ in range(4))

    def panes(self) -> list[pn.pane.HTML]:
        return [self.requests, self.errors, self.latency, self.tokens]

    def update(self, data: Overview) -> None:
        for pane, text in zip(self.panes(), _chart_svgs(data), strict=True):
            if pane.object != text:
                pane.object = text


def _chart_svgs(data: Overview) -> list[str]:
    """The SVG of the four charts: requests, errors by outcome, latency p50/p95, tokens (per minute)."""
    s, width = data.series, data.window.bucket_s
    t = (s["t"] - pd.Timestamp(0)).dt.total_seconds().to_numpy() if len(s) else []
    col = {c: s[c].to_numpy(dtype=float) for c in s.columns if c != "t"}
    errors = [Layer(o, _OUTCOME_COLORS[o], col[f"errors_per_min_{o}"]) for o in ERROR_OUTCOMES]
    return [
        chart_svg("Requests / min", t, width, [Layer("requests", "#1f77b4", col["requests_per_min"])]),
        chart_svg("Errors / min by outcome", t, width, errors, value_format="{:,.2f}"),
        chart_svg(
            "Latency (ms)", t, width,
            [Layer("p50", "#2ca02c", col["p50_ms"]), Layer("p95", "#d62728", col["p95_ms"])], kind="lines",
        ),
        chart_svg(
            "Tokens / min", t, width,
            [Layer("prompt", "#1f77b4", col["prompt_tokens_per_min"]),
             Layer("completion", "#ff7f0e", col["completion_tokens_per_min"])],
            kind="lines",
        ),
    ]  # fmt: skip


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
    pn.extension()
    page(Context(os.environ.get("LLMGW_DATA_DIR", "llmgw-data"))).servable(title="llmgw · overview")
