"""Policy: the live policy's version history (archived, first and last served: a hot reload
shows as the first row a version served) with the diff of each version against the one
before, and the forecast recorded at the last promotion beside what the log shows since,
as ``llmgw forecast check`` prints it (``/policy``).

A view only: the numbers come from :func:`llmgw_kernel.dashboard.policy_data.policy`.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn

from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, note, page_frame
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.policy_data import PolicyData, policy

_FORMATS = dict.fromkeys(("forecast", "observed", "diff"), number("{:.4f}"))


def spec() -> PageSpec:
    """This page: how a session builds it (and switches to it from another page)."""
    return PageSpec("/policy", "Policy", _Body)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


class _Body:
    def __init__(self) -> None:
        self.kpis = kpi_pane()
        # plain HTML tables, not Tabulators: ~0.3 browser CPU s less each (html_table.py)
        self.versions = HtmlTable("llmgw-versions")
        self.pick = pn.widgets.Select(label="Diff of version", options=[], width=260)
        self.diff = pn.pane.HTML("", sizing_mode="stretch_width")
        self.forecast_note = note()
        self.forecast = HtmlTable("llmgw-forecast", _FORMATS, max_height=480)
        self._diffs: dict[str, str] = {}
        self.pick.param.watch(self._show_diff, "value")

    def panes(self) -> list[Any]:
        return [
            self.kpis, heading("Versions"), self.versions.pane, self.pick, self.diff,
            heading("Forecast vs actual since the last promotion"), self.forecast_note, self.forecast.pane,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> PolicyData:
        return policy(ctx, filters)

    def show(self, data: PolicyData) -> None:
        self.kpis.object = _kpis(data)
        self.versions.update(_versions(data))
        self._diffs = data.diffs
        choices = [v.version for v in reversed(data.versions)]
        if self.pick.options != choices:
            self.pick.options = choices
        if choices and self.pick.value not in choices:
            self.pick.value = choices[0]
        self._show_diff()
        self.forecast_note.object = _forecast_note(data)
        self.forecast.update(_forecast_rows(data))

    def _show_diff(self, *_: Any) -> None:
        text = self._diffs.get(self.pick.value or "", "")
        self.diff.object = f'<pre data-diff="{html.escape(self.pick.value or "")}">{html.escape(text)}</pre>'


def _kpis(d: PolicyData) -> str:
    return kpi_html([
        ("live_version", d.live_version or "–", f"live version ({d.live_file or 'file unknown'})", False),
        ("versions", f"{len(d.versions):,}", "versions kept (live + history)", False),
        ("served_versions", f"{len(d.served):,}", "versions that served requests in the window", False),
        ("reload_error", "yes" if d.reload_error else "no", d.reload_error or "last reload error",
         bool(d.reload_error)),
    ])  # fmt: skip


def _versions(d: PolicyData) -> pd.DataFrame:
    served = d.served.set_index("policy_version") if len(d.served) else None
    rows = []
    for v in reversed(d.versions):
        s = served.loc[v.version] if served is not None and v.version in served.index else None
        rows.append({
            "version": v.version,
            "status": "live" if v.archived_at is None else ("rolled back" if v.rolled_back else "archived"),
            "replaced_at": v.archived_at.strftime("%Y-%m-%d %H:%M:%S UTC") if v.archived_at else "",
            "requests": int(s["requests"]) if s is not None else 0,
            "first_served": str(s["first_served"])[:19] if s is not None else "",
            "last_served": str(s["last_served"])[:19] if s is not None else "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["version", "status", "replaced_at", "requests", "first_served", "last_served"])


def _forecast_rows(d: PolicyData) -> pd.DataFrame:
    rows = pd.DataFrame(d.forecast["rows"]) if d.forecast else pd.DataFrame()
    if "interval" in rows:
        rows["interval"] = [f"[{i[0]:+.4f}, {i[1]:+.4f}]" if i else "" for i in rows["interval"]]
    return rows


def _forecast_note(d: PolicyData) -> str:
    if d.forecast is None:
        return f'<p class="note" data-forecast="none">{html.escape(d.forecast_note)}</p>'
    rec, basis = d.forecast["record"], d.forecast["observed"]["basis"]
    return (
        f'<p class="note" data-forecast="{html.escape(rec["version"])}">forecast for {html.escape(rec["version"])}, '
        f"promoted {html.escape(str(rec['promoted_at']))}; observed since: {basis['requests']:,} requests</p>"
    )
