"""The frame every dashboard page shares: the navigation, the filter bar, a loading
placeholder, and the load / refresh cycle.

A page module builds a :class:`Body` (its panes, and ``update(ctx, filters)`` that queries
and fills them) and hands it to :func:`page_frame`. The frame returns at once with the
filter bar and a "Loading…" placeholder (the browser shows it within a second); the body is
filled when the browser has the document (``pn.state.onload``), again when a filter changes,
and every ``refresh_ms``. Filters come from the URL query (``?window=24+h&team=search``); a
change rewrites every navigation link, so the filters follow the operator from page to page,
and the address bar (Panel's ``Location``: best effort; a change that crosses a refresh in
flight may leave the address bar behind, never the links or the page's numbers).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import panel as pn

from .context import Context
from .filters import COLUMNS, DEFAULT_PRESET, PRESETS, Filters

log = logging.getLogger("llmgw.dashboard")

#: (URL path, title) of every page, in the navigation's order
NAV: tuple[tuple[str, str], ...] = (
    ("/overview", "Overview"), ("/cost", "Cost"), ("/budgets", "Budgets"), ("/cache", "Cache"),
    ("/routing", "Routing"), ("/policy", "Policy"), ("/guardrails", "Guardrails"),
)  # fmt: skip
ALL = "(all)"
CUSTOM = "custom"
REFRESH_MS = 10_000
_LABELS = {"route": "Route", "team": "Team", "key": "Key", "user": "User", "model": "Model", "provider": "Provider"}

CSS = """
.kpis { display: flex; flex-wrap: wrap; gap: 10px; }
.kpi { border: 1px solid #dde1e6; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.kpi-value { font-size: 1.6em; font-weight: 600; }
.kpi-label { color: #5f6b7a; font-size: 0.85em; }
.kpi.bad .kpi-value { color: #c0392b; }
.nav a { margin-right: 14px; text-decoration: none; color: #1f5fa8; }
.nav a.current { font-weight: 700; color: #111; border-bottom: 2px solid #1f5fa8; }
.status { color: #5f6b7a; font-size: 0.85em; }
.status.error { color: #c0392b; }
.loading { color: #5f6b7a; font-size: 1.2em; padding: 20px; }
.note { color: #5f6b7a; }
"""


class Body(Protocol):
    """A page's content: its panes, filled by ``update`` from the shared context."""

    def panes(self) -> list[Any]: ...

    def update(self, ctx: Context, filters: Filters) -> None: ...


def kpi_html(cards: Iterable[tuple[str, str, str, bool]]) -> str:
    """KPI cards ``(key, value, label, bad)``; each carries ``data-kpi="key"`` for tests."""
    body = "".join(
        f'<div class="kpi{" bad" if bad else ""}" data-kpi="{html.escape(key)}">'
        f'<div class="kpi-value">{html.escape(value)}</div><div class="kpi-label">{html.escape(text)}</div></div>'
        for key, value, text, bad in cards
    )
    return f'<div class="kpis">{body}</div>'


def kpi_pane() -> pn.pane.HTML:
    return pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")


def table(page_size: int = 15, **kwargs: Any) -> pn.widgets.Tabulator:
    """A read-only table (Tabulator), paginated in the browser."""
    return pn.widgets.Tabulator(
        None, disabled=True, show_index=False, pagination="local", page_size=page_size,
        sizing_mode="stretch_width", layout="fit_data_fill", **kwargs,
    )  # fmt: skip


def heading(text: str) -> pn.pane.Markdown:
    return pn.pane.Markdown(f"### {text}", margin=(10, 10, 0, 10))


def note(text: str = "") -> pn.pane.HTML:
    return pn.pane.HTML(text, stylesheets=[CSS], sizing_mode="stretch_width")


def usd(value: float | None) -> str:
    return "–" if value is None else f"${value:,.4f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


class FilterBar:
    """The window and filter widgets, the navigation links, and the URL they keep in sync."""

    def __init__(self, ctx: Context, filters: Filters, path: str) -> None:
        self.ctx = ctx
        self.path = path
        self._filters = filters
        options = list(PRESETS) + ([CUSTOM] if filters.since is not None or filters.until is not None else [])
        value = CUSTOM if CUSTOM in options else filters.window
        self.window = pn.widgets.RadioButtonGroup(options=options, value=value, margin=(5, 10))
        self.selects = {
            name: pn.widgets.Select(
                label=_LABELS[name], options=[ALL] + ([v] if (v := getattr(filters, name)) else []),
                value=getattr(filters, name) or ALL, width=150, margin=(0, 5),
            )
            for name in COLUMNS
        }  # fmt: skip
        self.nav = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width", margin=(0, 10))
        self._render_nav()

    @property
    def filters(self) -> Filters:
        return self._filters

    def panes(self) -> list[Any]:
        # a FlexBox wraps the selects under the window buttons on a narrow screen
        return [self.nav, pn.FlexBox(self.window, *self.selects.values(), sizing_mode="stretch_width")]

    def watch(self, callback: Any) -> None:
        """Call ``callback()`` after the filters changed (and the URL and links followed)."""

        def changed(*_: Any) -> None:
            self._read_widgets()
            callback()

        self.window.param.watch(changed, "value")
        for select in self.selects.values():
            select.param.watch(changed, "value")

    def refresh_options(self) -> None:
        """Fill the selects with the policy's routes and the values seen in the window."""
        options = self.ctx.options(self._filters)
        for name, select in self.selects.items():
            current = getattr(self._filters, name)
            choices = [ALL, *options.get(name, [])]
            if current is not None and current not in choices:
                choices.append(current)  # an explicit filter stays selectable
            if select.options != choices:
                select.options = choices

    def _read_widgets(self) -> None:
        changes: dict[str, Any] = {n: (None if s.value == ALL else s.value) for n, s in self.selects.items()}
        if self.window.value != CUSTOM:
            if self.window.value != self._filters.window or self._filters.since is not None:
                changes["window"] = self.window.value
            if CUSTOM in self.window.options:
                self.window.options = list(PRESETS)
        self._filters = self._filters.with_(**changes)
        self._render_nav()
        location = pn.state.location
        if location is not None:
            query = self._filters.to_query()
            location.search = f"?{query}" if query else ""

    def _render_nav(self) -> None:
        query = self._filters.to_query()
        suffix = f"?{html.escape(query)}" if query else ""
        links = "".join(
            f'<a href="{path}{suffix}" data-nav="{path[1:]}"{" class=current" if path == self.path else ""}>{title}</a>'
            for path, title in NAV
        )
        self.nav.object = f'<div class="nav"><b>llmgw</b> · {links}</div>'


def session_filters() -> Filters:
    """The filters in this session's URL query (defaults when there is no session)."""
    args = pn.state.session_args if pn.state.curdoc is not None else {}
    try:
        return Filters.from_query(args or {})
    except ValueError:
        log.info("dashboards: ignoring a malformed filter in the URL query")
        return Filters()


def page_frame(ctx: Context, path: str, title: str, body: Body, refresh_ms: int = REFRESH_MS) -> pn.Column:
    """The page at ``path``: nav, filter bar, ``body``; filled after the document loads."""
    bar = FilterBar(ctx, session_filters(), path)
    status = pn.pane.HTML(
        '<div class="loading" data-loading="1">Loading… (querying the request log)</div>',
        stylesheets=[CSS], sizing_mode="stretch_width",
    )  # fmt: skip
    panes = body.panes()
    for pane in panes:
        pane.visible = False

    def fill(*_: Any) -> None:
        t0 = time.perf_counter()
        try:
            bar.refresh_options()
            body.update(ctx, bar.filters)
        except Exception as exc:  # shown on the page; the session lives on
            log.exception("dashboard page %s failed", path)
            status.object = f'<div class="status error" data-error="1">could not load: {html.escape(str(exc))}</div>'
            return
        took = time.perf_counter() - t0
        as_of = datetime.fromtimestamp(ctx.queries.clock(), UTC)
        window = html.escape(bar.filters.label(as_of.timestamp()))
        status.object = (
            f'<div class="status" data-ready="1" data-took="{took:.3f}" '
            f'data-query="{html.escape(bar.filters.to_query())}">{window}'
            f" · as of {as_of:%H:%M:%S} UTC · {took * 1000:.0f} ms · refreshes every {refresh_ms // 1000} s</div>"
        )
        for pane in panes:
            if not pane.visible:
                pane.visible = True

    def refresh(*_: Any) -> None:
        if _may_change(bar.filters, ctx.queries.clock()):
            fill()

    bar.watch(fill)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.onload(fill)
        pn.state.add_periodic_callback(refresh, period=refresh_ms)
    else:  # built outside a server (tests, notebooks): fill now
        fill()
    header = pn.pane.Markdown(f"## {title}", margin=(0, 10))
    return pn.Column(*bar.panes(), pn.Row(header, status, align="center"), *panes, sizing_mode="stretch_width")


def _may_change(filters: Filters, now: float, settle_s: float = 120.0) -> bool:
    """Whether a refresh can show anything new: not for a range that ended more than
    ``settle_s`` ago (the log only appends; rows reach it within a flush)."""
    return filters.until is None or filters.until > now - settle_s


__all__ = [
    "ALL", "CSS", "DEFAULT_PRESET", "NAV", "Body", "FilterBar", "kpi_html", "kpi_pane", "ms", "page_frame", "pct",
    "table", "usd",
]  # fmt: skip
