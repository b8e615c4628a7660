"""The frame every dashboard page shares: the navigation, the filter bar, a loading
placeholder, and the load / refresh cycle.

A page module builds a :class:`~.page_fill.Body` (its panes; ``query(ctx, filters)``, run on
a worker thread; ``show(data)``, which fills the panes) and hands it to :func:`page_frame`.
The frame returns at once with the filter bar and a "Loading…" placeholder, and the page's
queries start right then, while the document is built and sent (:mod:`.page_fill`: when
they run, when a live window refreshes); again when a filter or one of the body's
``controls()`` changes. Filters come from the URL query (``?window=24+h&team=search``); a
change rewrites every navigation link, so the filters follow the operator from page to page,
and the address bar (Panel's ``Location``: best effort; a change that crosses a refresh in
flight may leave the address bar behind, never the links or the page's numbers).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import panel as pn

from .context import Context
from .filters import COLUMNS, DEFAULT_PRESET, PRESETS, Filters
from .page_fill import Answer, Body, PageFill

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

    def query_options(self, filters: Filters) -> dict[str, list[str]]:
        """The policy's routes and the values seen in the window (on a query thread)."""
        return self.ctx.options(filters)

    def show_options(self, options: dict[str, list[str]]) -> None:
        """Fill the selects with ``options`` (from :meth:`query_options`)."""
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
    """The page at ``path``: nav, filter bar, ``body``; its queries start at once
    (:class:`~.page_fill.PageFill`) and the body is shown when they answer."""
    bar = FilterBar(ctx, session_filters(), path)
    status = pn.pane.HTML(
        '<div class="loading" data-loading="1">Loading… (querying the request log)</div>',
        stylesheets=[CSS], sizing_mode="stretch_width",
    )  # fmt: skip
    panes = body.panes()
    for pane in panes:
        pane.visible = False

    def show(answer: Answer) -> None:
        try:
            if answer.error is not None:
                raise answer.error
            bar.show_options(answer.options)
            body.show(answer.data)
        except Exception as exc:  # shown on the page; the session lives on
            log.error("dashboard page %s failed", path, exc_info=exc)
            status.object = f'<div class="status error" data-error="1">could not load: {html.escape(str(exc))}</div>'
            return
        status.object = _ready_html(answer, ctx.queries.clock(), refresh_ms)
        for pane in panes:
            if not pane.visible:
                pane.visible = True

    served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
    fill = PageFill(ctx, bar, body, show, pn.state.curdoc if served else None)
    bar.watch(lambda: fill.start(bar.filters))
    for control in getattr(body, "controls", list)():
        control.param.watch(lambda *_: fill.start(bar.filters), "value")
    fill.start(bar.filters)
    if served:

        def refresh() -> None:
            if fill.due(bar.filters, ctx.queries.clock(), refresh_ms / 1000):
                fill.start(bar.filters)

        pn.state.add_periodic_callback(refresh, period=refresh_ms)
    header = pn.pane.Markdown(f"## {title}", margin=(0, 10))
    return pn.Column(*bar.panes(), pn.Row(header, status, align="center"), *panes, sizing_mode="stretch_width")


def _ready_html(answer: Answer, now: float, refresh_ms: int) -> str:
    as_of = datetime.fromtimestamp(now, UTC)
    window = html.escape(answer.filters.label(as_of.timestamp()))
    return (
        f'<div class="status" data-ready="1" data-took="{answer.took_s:.3f}" '
        f'data-query="{html.escape(answer.filters.to_query())}">{window}'
        f" · as of {as_of:%H:%M:%S} UTC · {answer.took_s * 1000:.0f} ms"
        f" · refreshes every {refresh_ms // 1000} s or more (a slow window less often)</div>"
    )


__all__ = [
    "ALL", "CSS", "DEFAULT_PRESET", "NAV", "Body", "FilterBar", "kpi_html", "kpi_pane", "ms", "page_frame", "pct",
    "table", "usd",
]  # fmt: skip
