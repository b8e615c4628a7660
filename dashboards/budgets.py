"""Budgets: each live budget's burn-down with a run-out forecast, and the budget and
rate-limit refusals of the window (``/budgets``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.budget_data.budgets`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.palettes import Category20

from llmgw_kernel.dashboard.budget_data import BudgetData, budgets, label
from llmgw_kernel.dashboard.charts import SvgLines, group_layers
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, note, page_frame
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.svg_chart import Layer, alone, chart_pane, chart_svg

_MONEY = number("${:,.4f}")
_FORMATS = {
    **dict.fromkeys(("limit_usd", "spent_usd", "in_flight_usd", "remaining_usd", "burn_usd_per_h"), _MONEY),
    "used": number("{:.1%}"),
}


def spec() -> PageSpec:
    """This page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/budgets", "Budgets", _Body)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


class _Body:
    def __init__(self) -> None:
        self.kpis = kpi_pane()
        self.live = note()
        # plain HTML tables, not Tabulators: ~0.3 browser CPU s less each (html_table.py)
        self.table = HtmlTable("llmgw-budgets", _FORMATS, max_height=480)
        self.refusals = HtmlTable("llmgw-refusals")
        # static SVG charts (svg_chart.py: no Bokeh figure); a bucket's values on hover
        self.burndown = chart_pane()
        self.burndown.max_width = 1000
        self.refusal_chart = SvgLines("Refusals per bucket", "{:,.0f}", max_width=900)

    def panes(self) -> list[Any]:
        return [
            self.kpis, self.live, heading("Budgets (live)"), self.table.pane, alone(self.burndown),
            heading("Refusals"), alone(self.refusal_chart.pane), self.refusals.pane,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> BudgetData:
        return budgets(ctx, filters)

    def show(self, data: BudgetData) -> None:
        self.kpis.object = _kpis(data)
        self.live.object = (
            ""
            if data.live
            else '<p class="note" data-live="unavailable">Live state unavailable: the gateway did not '
            "answer /metrics, so budgets are not listed (refusals below come from the log).</p>"
        )
        self.table.update(_budget_table(data))
        if self.burndown.object != (svg := burndown_svg(data)):
            self.burndown.object = svg
        self.refusal_chart.update(data.refusal_series, "requests", data.buckets)
        self.refusals.update(data.refusals)


BURNDOWN_TITLE = "Remaining USD over each budget's current window: the log's, then the run-out forecast"


def burndown_svg(d: BudgetData) -> str:
    """Each charted budget's remaining USD (from the log) up to now and its forecast from now
    (the same colour, lighter: "<budget> forecast") to the run-out (0) or the window's end."""
    start, width, n = d.burndown_buckets
    starts = start + width * np.arange(n, dtype=float)
    logged = group_layers(d.burndown, "remaining_usd", starts, None)
    ahead = group_layers(d.burndown, "forecast_usd", starts, None)
    layers = []
    for k, (log, fc) in enumerate(zip(logged, ahead, strict=True)):
        layers.append(Layer(log.label, Category20[20][2 * k % 20], log.values))
        layers.append(Layer(f"{fc.label} forecast", Category20[20][(2 * k + 1) % 20], fc.values))
    return chart_svg(BURNDOWN_TITLE, starts, width, layers, "lines", "${:,.4f}")


def _kpis(d: BudgetData) -> str:
    soonest = min((r.run_out_ts for r in d.budgets if r.run_out_ts is not None), default=None)
    return kpi_html([
        ("budgets", f"{len(d.budgets):,}", "budgets (live)", False),
        ("budget_refused", f"{d.budget_refused:,}", "refused: budget exceeded", d.budget_refused > 0),
        ("rate_refused", f"{d.rate_refused:,}", "refused: rate limited", d.rate_refused > 0),
        ("run_out", _when(soonest), "first budget to run out (forecast)", soonest is not None),
    ])  # fmt: skip


def _when(ts: float | None) -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _budget_table(d: BudgetData) -> pd.DataFrame:
    rows = [
        {
            "budget": label(r.budget), "mode": r.budget.mode, "limit_usd": r.budget.limit_usd,
            "spent_usd": r.budget.spent_usd, "in_flight_usd": r.budget.in_flight_usd,
            "remaining_usd": r.budget.remaining_usd,
            "used": (r.budget.spent_usd + r.budget.in_flight_usd) / r.budget.limit_usd if r.budget.limit_usd else None,
            "burn_usd_per_h": r.burn_usd_per_h, "runs_out": _when(r.run_out_ts), "window_ends": _when(r.window_end),
        }
        for r in d.budgets
    ]  # fmt: skip
    columns = ["budget", "mode", "limit_usd", "spent_usd", "in_flight_usd", "remaining_usd", "used", "burn_usd_per_h",
               "runs_out", "window_ends"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
