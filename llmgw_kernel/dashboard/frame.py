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
The filter bar is one model of plain HTML (:class:`FilterForm`: native buttons and labelled
selects), the navigation another (:class:`NavLinks`): the frame costs the browser two views,
not ten Bokeh widgets and layouts.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import panel as pn
import param
from panel.custom import JSComponent

from .context import Context
from .filters import COLUMNS, DEFAULT_PRESET, PRESETS, Filters
from .page_fill import Answer, Body, PageFill

log = logging.getLogger("llmgw.dashboard")

#: (URL path, title) of every page, in the navigation's order
NAV: tuple[tuple[str, str], ...] = (
    ("/overview", "Overview"), ("/cost", "Cost"), ("/budgets", "Budgets"), ("/cache", "Cache"),
    ("/routing", "Routing"), ("/policy", "Policy"), ("/guardrails", "Guardrails"), ("/request", "Request"),
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


@dataclass(frozen=True)
class PageSpec:
    """A page of the dashboard: its URL path, its title, how a session builds its body, and
    how often its live window may refresh."""

    path: str
    title: str
    body: Callable[[], Body]
    refresh_ms: int = REFRESH_MS


class NavLinks(JSComponent):  # type: ignore[misc]
    """The navigation links. Real links (a new tab, a bookmark, a page without JavaScript
    work as links do), but a plain click only sets ``page``: the server swaps the page's body
    within the same document (:class:`Frame`), which spares the browser a new document — on
    this project's benchmark machine about 1 CPU s of Chromium per page load before any figure
    (docs/benchmarks.md). The back and forward buttons load the address they go to."""

    html = param.String(default="")
    page = param.String(default="")
    _stylesheets: ClassVar[list[str]] = [CSS]
    _esm = """
export function render({ model, el }) {
  document.getElementById("llmgw-boot")?.remove()  // the page's own placeholder (BOOT_TEMPLATE)
  const draw = () => { el.innerHTML = model.html }
  draw()
  model.on("html", draw)
  el.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-nav]")
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return
    event.preventDefault()
    model.page = "/" + link.dataset.nav
  })
  if (!window.__llmgwPopstate) {  // a history step lands on the address it names
    window.__llmgwPopstate = true
    window.addEventListener("popstate", () => window.location.reload())
  }
}
"""


FORM_CSS = """
.filters { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: flex-end; font: 13px sans-serif; }
.windows { display: inline-flex; }
.windows button { font: inherit; padding: 5px 12px; border: 1px solid #ccc; background: #fff; cursor: pointer; }
.windows button + button { border-left: none; }
.windows button:first-child { border-radius: 4px 0 0 4px; }
.windows button:last-child { border-radius: 0 4px 4px 0; }
.windows button[aria-pressed="true"] { background: #1f5fa8; border-color: #1f5fa8; color: #fff; }
.filters .field { display: inline-flex; flex-direction: column; gap: 2px; color: #333; }
.filters select { font: inherit; width: 150px; padding: 4px; border: 1px solid #ccc; border-radius: 4px; }
.filters :focus-visible { outline: 2px solid #1f5fa8; outline-offset: 1px; }
"""


class FilterForm(JSComponent):  # type: ignore[misc]
    """The filter bar as one model of plain HTML: the window's buttons and a native ``<select>``
    per filter, named by its ``<label for>`` (``labels``; ``values[i]`` the chosen value or :data:`ALL`,
    ``options[i]`` its choices). It replaces a Bokeh ``RadioButtonGroup``, six ``Select`` widgets
    and their ``FlexBox`` (eight models, each a view with its own shadow root and stylesheets):
    the browser builds it in one go. Native controls: labels, tab order and keys as any form's;
    a select keeps its focus while its choices are refreshed."""

    labels = param.List(default=[])
    values = param.List(default=[])
    options = param.List(default=[])
    windows = param.List(default=[])
    window = param.String(default="")
    _stylesheets: ClassVar[list[str]] = [FORM_CSS]
    _esm = """
export function render({ model, el }) {
  const form = document.createElement("form")
  form.className = "filters"
  form.setAttribute("aria-label", "Filters")
  form.addEventListener("submit", (event) => event.preventDefault())
  const windows = document.createElement("div")
  windows.className = "windows"
  windows.setAttribute("role", "group")
  windows.setAttribute("aria-label", "Time window")
  form.append(windows)
  const selects = model.labels.map((label, i) => {
    const field = document.createElement("div"), name = document.createElement("label")
    const select = document.createElement("select")
    field.className = "field"
    select.id = `llmgw-filter-${i}`  // unique in the form's shadow root: the label names it alone
    name.htmlFor = select.id
    name.textContent = label
    field.append(name, select)
    form.append(field)
    select.addEventListener("change", () => {
      const values = [...model.values]
      values[i] = select.value
      model.values = values
    })
    return select
  })
  const drawWindows = () => {
    windows.replaceChildren(...model.windows.map((name) => {
      const button = document.createElement("button")
      button.type = "button"
      button.textContent = name
      button.setAttribute("aria-pressed", String(name === model.window))
      button.addEventListener("click", () => { model.window = name })
      return button
    }))
  }
  const drawSelects = () => {
    selects.forEach((select, i) => {
      const choices = model.options[i] || [], value = model.values[i]
      const same = select.options.length === choices.length && choices.every((c, j) => select.options[j].value === c)
      if (!same) select.replaceChildren(...choices.map((c) => new Option(c, c)))
      if (select.value !== value) select.value = value
    })
  }
  drawWindows()
  drawSelects()
  model.on(["windows", "window"], drawWindows)
  model.on(["options", "values"], drawSelects)
  el.append(form)
}
"""


#: the URL query's names the filter bar owns (a page's own, such as the request page's ``id``, are kept)
FILTER_KEYS = frozenset(("window", "since", "until", *COLUMNS))


def _with_filters(search: str, filters: Filters) -> str:
    """The address bar's query ``search`` with its filters replaced by ``filters`` and the page's
    own parameters (``/request?id=...``) kept, in their order."""
    own = [(k, v) for k, v in parse_qsl(search.lstrip("?"), keep_blank_values=True) if k not in FILTER_KEYS]
    query = "&".join(q for q in (filters.to_query(), urlencode(own)) if q)
    return f"?{query}" if query else ""


class FilterBar:
    """The window and filter widgets, the navigation links, and the URL they keep in sync."""

    def __init__(self, ctx: Context, filters: Filters, path: str) -> None:
        self.ctx = ctx
        self.path = path
        self._filters = filters
        windows = list(PRESETS) + ([CUSTOM] if filters.since is not None or filters.until is not None else [])
        chosen = [getattr(filters, name) for name in COLUMNS]
        self.form = FilterForm(
            labels=[_LABELS[name] for name in COLUMNS], values=[v or ALL for v in chosen],
            options=[[ALL] + ([v] if v else []) for v in chosen],
            windows=windows, window=CUSTOM if CUSTOM in windows else filters.window,
            sizing_mode="stretch_width", margin=(5, 10),
        )  # fmt: skip
        self.nav = NavLinks(page=path, sizing_mode="stretch_width", margin=(0, 10))
        self._render_nav()

    @property
    def filters(self) -> Filters:
        return self._filters

    def panes(self) -> list[Any]:
        # the form wraps its selects under the window buttons on a narrow screen
        return [self.nav, self.form]

    def set_path(self, path: str) -> None:
        """The page shown is now ``path``: the links mark it, the address bar names it."""
        self.path = path
        self.nav.page = path
        self._render_nav()
        location = pn.state.location
        if location is not None and location.pathname != path:
            location.pathname = path

    def watch(self, callback: Any) -> None:
        """Call ``callback()`` after the filters changed (and the URL and links followed)."""

        def changed(*_: Any) -> None:
            self._read_widgets()
            callback()

        self.form.param.watch(changed, ["window", "values"])

    def query_options(self, filters: Filters) -> dict[str, list[str]]:
        """The policy's routes and the values seen in the window (on a query thread)."""
        return self.ctx.options(filters)

    def show_options(self, options: dict[str, list[str]]) -> None:
        """Fill the selects with ``options`` (from :meth:`query_options`)."""
        shown = []
        for name in COLUMNS:
            current = getattr(self._filters, name)
            choices = [ALL, *options.get(name, [])]
            if current is not None and current not in choices:
                choices.append(current)  # an explicit filter stays selectable
            shown.append(choices)
        if self.form.options != shown:
            self.form.options = shown

    def _read_widgets(self) -> None:
        form = self.form
        changes: dict[str, Any] = {n: (None if v == ALL else v) for n, v in zip(COLUMNS, form.values, strict=True)}
        if form.window != CUSTOM:
            if form.window != self._filters.window or self._filters.since is not None:
                changes["window"] = form.window
            if CUSTOM in form.windows:
                form.windows = list(PRESETS)
        self._filters = self._filters.with_(**changes)
        self._render_nav()
        location = pn.state.location
        if location is not None:
            location.search = _with_filters(location.search or "", self._filters)

    def _render_nav(self) -> None:
        query = self._filters.to_query()
        suffix = f"?{html.escape(query)}" if query else ""
        links = "".join(
            f'<a href="{path}{suffix}" data-nav="{path[1:]}"{" class=current" if path == self.path else ""}>{title}</a>'
            for path, title in NAV
        )
        self.nav.html = f'<div class="nav"><b>llmgw</b> · {links}</div>'


def session_filters() -> Filters:
    """The filters in this session's URL query (defaults when there is no session)."""
    args = pn.state.session_args if pn.state.curdoc is not None else {}
    try:
        return Filters.from_query(args or {})
    except ValueError:
        log.info("dashboards: ignoring a malformed filter in the URL query")
        return Filters()


LOADING_HTML = '<div class="loading" data-loading="1">Loading… (querying the request log)</div>'

#: The "Loading…" line every page's HTML starts its body with.
BOOT_DIV = (
    '<div id="llmgw-boot" data-loading="boot" style="font: 1.2em sans-serif; color: #5f6b7a; padding: 20px">'
    "llmgw · Loading… (starting the page)</div>"
)

#: What every page's HTML starts with, the same for every page and session: a head with nothing
#: that depends on the session, and the "Loading…" line. The server sends it before Panel makes
#: the session (:mod:`.page_handler`), so the browser paints the line while the page's Python runs.
BOOT_PREFIX = (
    '<!DOCTYPE html>\n<html lang="en" >\n<head><meta charset="utf-8"><title>llmgw</title></head><body>' + BOOT_DIV
)

#: The page's HTML (Panel's template, extended): :data:`BOOT_PREFIX` — a constant head, then the
#: "Loading…" line first in the body — and after it what Panel's head holds (favicons, styles) and
#: Bokeh's and Panel's ~2.7 MB of scripts, moved from the head, so the browser paints the line from
#: the page's first bytes while it runs them (0.3–0.5 CPU s even when cached), opens the session's
#: websocket and builds the document. The frame's navigation removes it when it is drawn
#: (:class:`NavLinks`). Before, the first thing painted was the frame itself.
BOOT_TEMPLATE = (
    """
{% block head %}<head><meta charset="utf-8"><title>llmgw</title></head>{% endblock %}
{% block body %}<body>"""
    + BOOT_DIV
    + """
<link rel="icon" type="image/png" sizes="32x32" href="{{ dist_url }}images/favicon.ico">
{{ self.preamble() }}
{{ self.resources() }}
{{ bokeh_js if bokeh_js }}
{{ self.inner_body() }}
</body>
{% endblock %}
{% block js_resources %}{% endblock %}
"""
)


def page_frame(ctx: Context, spec: PageSpec) -> pn.Column:
    """The page ``spec`` for one session (nav, filter bar, its body); its queries start at
    once (:class:`~.page_fill.PageFill`) and the body is shown when they answer. The session's
    links then swap pages within this document (:class:`Frame`)."""
    return Frame(ctx, spec).view


class Frame:
    """One session's document: the navigation and filter bar, kept, and the page shown under
    them, swapped in place when a link is clicked (the filters carry across as they are; the
    address bar follows, so a reload or a bookmark opens the same page with the same filters)."""

    def __init__(self, ctx: Context, spec: PageSpec) -> None:
        self.ctx = ctx
        self.bar = FilterBar(ctx, session_filters(), spec.path)
        curdoc = pn.state.curdoc
        served = curdoc is not None and curdoc.session_context is not None
        self.doc: Any = curdoc if served else None
        if curdoc is not None and served:
            # the page's HTML: a "Loading…" line before the scripts. Bokeh's setter takes a str
            # too (typed Template only); Panel renders a str as an extension of its base template
            curdoc.template = BOOT_TEMPLATE  # type: ignore[assignment]
        self.header = pn.pane.Markdown("", margin=(0, 10))
        self.status = pn.pane.HTML(LOADING_HTML, stylesheets=[CSS], sizing_mode="stretch_width")
        self.main = pn.Column(sizing_mode="stretch_width")
        self.spec = spec
        self.fill: PageFill | None = None
        self.bar.watch(self._restart)
        self.bar.nav.param.watch(lambda event: self.navigate(event.new), "page")
        self._tick: Any = None
        self._loaded = not served
        self._held: tuple[PageFill, Body, list[Any], Answer] | None = None
        if served:
            pn.state.onload(self._on_load)
        self._open(spec)
        if served:
            self._tick = pn.state.add_periodic_callback(self._refresh, period=spec.refresh_ms)
        self.view = pn.Column(
            *self.bar.panes(), pn.Row(self.header, self.status, align="center"), self.main, sizing_mode="stretch_width"
        )

    def navigate(self, path: str) -> None:
        """Show the page at ``path`` in this document (a path that is not a page is ignored)."""
        if path == self.spec.path:
            return
        spec = page_spec(path)
        if spec is None:
            self.bar.nav.page = self.spec.path
            return
        self.bar.set_path(spec.path)
        if self._tick is not None and spec.refresh_ms < self._tick.period:
            self._tick.period = spec.refresh_ms  # the overview's 5 s, reached from a 10 s page
        self._open(spec)

    def _open(self, spec: PageSpec) -> None:
        """Build ``spec``'s body and start its queries; its panes join the document with their
        first answer, data and all (a table added empty and filled by the next patch could
        get its columns before Tabulator had built itself: a console error, an empty table).
        An answer still coming for the page shown before is dropped."""
        body = spec.body()
        panes: list[Any] = []
        fill = PageFill(self.ctx, self.bar, body, lambda answer: self._show(fill, body, panes, answer), self.doc)
        for control in getattr(body, "controls", list)():
            control.param.watch(lambda *_: self._restart() if self.fill is fill else None, "value")
        self.spec, self.fill = spec, fill
        self.header.object = f"## {spec.title}"
        self.status.object = LOADING_HTML
        self.main.objects = []
        if self.doc is None:  # no server: the answer is shown in start(), so the panes come first
            panes.extend(body.panes())
            fill.start(self.bar.filters)
            return
        # served: the queries start before the panes are built (Bokeh models: the overview's
        # four figures are ~0.1 CPU s), which also delays the page's first byte; the answer is
        # shown on this session's loop, so after this returns, panes and all
        fill.start(self.bar.filters)
        panes.extend(body.panes())

    def _restart(self) -> None:
        if self.fill is not None:
            self.fill.start(self.bar.filters)

    def _refresh(self) -> None:
        fill = self.fill
        if fill is not None and fill.due(self.bar.filters, self.ctx.queries.clock(), self.spec.refresh_ms / 1000):
            fill.start(self.bar.filters)

    def _on_load(self) -> None:
        """The browser reported the document loaded: show an answer held until now."""
        self._loaded = True
        held, self._held = self._held, None
        if held is not None:
            self._show(*held)

    def _show(self, fill: PageFill, body: Body, panes: list[Any], answer: Answer) -> None:
        if fill is not self.fill:
            return  # the operator went on to another page
        if not self._loaded and _browser_has_document(self.doc):
            # Panel (1.9) drops a layout's changes made before the browser reports the document
            # loaded (it expects to send the whole document then, but the browser pulled it
            # already): the ready line arrived, the page's panes never did. Shown at load.
            self._held = (fill, body, panes, answer)
            return
        try:
            if answer.error is not None:
                raise answer.error
            self.bar.show_options(answer.options)
            body.show(answer.data)
        except Exception as exc:  # shown on the page; the session lives on
            log.error("dashboard page %s failed", self.spec.path, exc_info=exc)
            self.status.object = (
                f'<div class="status error" data-error="1">could not load: {html.escape(str(exc))}</div>'
            )
            return
        if self.main.objects != panes:  # the first answer: the panes arrive with their data
            self.main.objects = panes
        # after the panes: the browser gets the "ready" line after the figures and tables it
        # names (set first, it arrived in a message before theirs)
        self.status.object = _ready_html(answer, self.ctx.queries.clock(), self.spec, panes)


def _browser_has_document(doc: Any) -> bool:
    """Whether a browser's websocket is subscribed to ``doc``'s session (it pulls the document
    at once; until then a change is part of the document it pulls)."""
    session = getattr(getattr(doc, "session_context", None), "_session", None)
    return session is not None and session.connection_count > 0


def page_spec(path: str) -> PageSpec | None:
    """The page at URL ``path`` (its module's ``spec()``), None when no page is there."""
    from .pages import PAGES, load_page_module

    name = PAGES.get(path)
    if name is None or not any(path == p for p, _ in NAV):
        return None
    spec: PageSpec = load_page_module(name).spec()
    return spec


def _ready_html(answer: Answer, now: float, spec: PageSpec, panes: list[Any]) -> str:
    """The status line of a filled page. ``data-charts`` / ``data-tables`` /
    ``data-html-tables`` / ``data-svg-charts`` say how many Bokeh figures, Tabulators, plain
    HTML tables (:mod:`.html_table`) and SVG charts (:mod:`.svg_chart`) the page shows, so a
    benchmark can wait until each is drawn, not only until this line arrives
    (benchmarks/dashboard_pages.py)."""
    as_of = datetime.fromtimestamp(now, UTC)
    window = html.escape(answer.filters.label(as_of.timestamp()))
    refresh_ms = spec.refresh_ms
    charts = sum(len(p.select(pn.pane.Bokeh)) for p in panes)
    tables = sum(len(p.select(pn.widgets.Tabulator)) for p in panes)
    html_tables = sum("llmgw-table" in str(h.object) for p in panes for h in p.select(pn.pane.HTML))
    svg_charts = sum('class="llmgw-chart"' in str(h.object) for p in panes for h in p.select(pn.pane.HTML))
    return (
        f'<div class="status" data-ready="1" data-page="{spec.path[1:]}" data-took="{answer.took_s:.3f}" '
        f'data-charts="{charts}" data-tables="{tables}" data-html-tables="{html_tables}" '
        f'data-svg-charts="{svg_charts}" '
        f'data-query="{html.escape(answer.filters.to_query())}">{window}'
        f" · as of {as_of:%H:%M:%S} UTC · {answer.took_s * 1000:.0f} ms"
        f" · refreshes every {refresh_ms // 1000} s or more (a slow window less often)</div>"
    )


__all__ = [
    "ALL", "CSS", "DEFAULT_PRESET", "NAV", "Body", "FilterBar", "FilterForm", "Frame", "NavLinks", "PageSpec",
    "kpi_html", "kpi_pane", "ms", "page_frame", "page_spec", "pct", "usd",
]  # fmt: skip
