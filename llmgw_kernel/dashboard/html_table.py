"""Read-only tables as plain HTML: one HTML pane per table, no Tabulator.

A Tabulator costs the browser ~0.3 CPU s per table whatever its rows (its layout passes,
``fitToData``, ``redraw``: docs/benchmarks.md, "where the routing and overview pages' CPU
goes"); the overview's three made it miss its 2 s. A plain ``<table>`` of the same rows
is laid out once with the rest of the page. What it gives up: sorting by a header click and
pagination — the rows come sorted by the query, and a long table scrolls in its own box
(its header stays in view) and stops at :data:`MAX_ROWS` with a line saying how many more
there were.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn

if TYPE_CHECKING:
    import pandas as pd

#: the most rows a table sends to the browser (the rest are counted in a line under it)
MAX_ROWS = 200
#: a text cell longer than this is kept to one line of at most 36em, cut with an ellipsis, whole
#: on hover: names a client chooses (a team, user or model of 20,000 characters) must not push
#: the table's figures off the screen
LONG_CHARS = 48
#: the most characters of one cell sent to the browser (shown and on hover), then "…"
MAX_CELL_CHARS = 1000

Format = Callable[[Any], str]
#: a cell's link: the value -> the address it opens (escaped by the table), or None for none
Link = Callable[[Any], str | None]

TABLE_CSS = """
.llmgw-table-box { overflow: auto; border: 1px solid #dde1e6; border-radius: 4px; }
table.llmgw-table { border-collapse: collapse; width: 100%; font-size: 0.85em; }
table.llmgw-table th { position: sticky; top: 0; background: #f3f5f7; text-align: left; font-weight: 600; }
table.llmgw-table th, table.llmgw-table td { padding: 3px 8px; border-bottom: 1px solid #eceff2; white-space: nowrap; }
table.llmgw-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.llmgw-table tbody tr:nth-child(even) { background: #fafbfc; }
table.llmgw-table td.long { max-width: 36em; overflow: hidden; text-overflow: ellipsis; }
.llmgw-table-more { color: #5f6b7a; font-size: 0.85em; padding: 2px 8px; }
"""


def number(fmt: str) -> Format:
    """A format for numbers (``"{:,.1f}"``, ``"{:.1%}"``): empty for a missing value."""
    return lambda v: "" if _missing(v) else fmt.format(v)


def _missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or other value that is not one scalar
        return False


def _cell(value: Any, fmt: Format | None) -> tuple[str, bool]:
    """(the cell's text, whether it is a number: right-aligned)."""
    if fmt is not None:
        return fmt(value), True
    if _missing(value):
        return "", False
    if isinstance(value, bool | np.bool_):
        return str(bool(value)), False
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}", True
    if isinstance(value, numbers.Real):
        return f"{float(value):,.4f}".rstrip("0").rstrip("."), True
    return str(value), False


def table_html(
    frame: pd.DataFrame | None,
    css_class: str = "",
    formats: Mapping[str, Format] | None = None,
    long_text: tuple[str, ...] = (),
    max_height: int = 320,
    max_rows: int = MAX_ROWS,
    links: Mapping[str, Link] | None = None,
) -> str:
    """``frame`` as an HTML table (every value escaped), in a box that scrolls past
    ``max_height`` px; ``long_text`` names the columns of long text (messages): kept to one line, cut
    with an ellipsis, the whole text shown on hover — as is any text cell over :data:`LONG_CHARS`
    (a name a client chose); no cell sends more than :data:`MAX_CELL_CHARS` characters. ``links``
    makes a column's cells links (a request id to the request page), the address escaped too."""
    formats, links = formats or {}, links or {}
    classes = " ".join(["llmgw-table", css_class]).strip()
    if frame is None or not len(frame.columns):
        return f'<div class="llmgw-table-box"><table class="{classes}" data-rows="0"></table></div>'
    columns = list(frame.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    rows = []
    for values in frame.head(max_rows).itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, values, strict=True):
            text, numeric = _cell(value, formats.get(column))
            if len(text) > MAX_CELL_CHARS:
                text = text[:MAX_CELL_CHARS] + "…"
            safe = html.escape(text)
            href = links[column](value) if column in links and text else None
            if href is not None:
                cells.append(f'<td><a href="{html.escape(href)}">{safe}</a></td>')
            elif not numeric and (column in long_text or len(text) > LONG_CHARS):  # one line, cut; all on hover
                cells.append(f'<td class="long" title="{safe}">{safe}</td>')
            else:
                cells.append(f'<td class="num">{safe}</td>' if numeric else f"<td>{safe}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = len(frame) - max_rows
    tail = f'<div class="llmgw-table-more">… {more:,} more rows not shown</div>' if more > 0 else ""
    return (
        f'<div class="llmgw-table-box" style="max-height: {max_height}px">'
        f'<table class="{classes}" data-rows="{len(frame)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{tail}"
    )


class HtmlTable:
    """An HTML pane holding one read-only table; :meth:`update` replaces its rows."""

    def __init__(
        self,
        css_class: str = "",
        formats: Mapping[str, Format] | None = None,
        long_text: tuple[str, ...] = (),
        max_height: int = 320,
        links: Mapping[str, Link] | None = None,
    ) -> None:
        self.css_class = css_class
        self.links = dict(links or {})
        self.formats = dict(formats or {})
        self.long_text = long_text
        self.max_height = max_height
        self.pane = pn.pane.HTML(
            table_html(None, css_class), stylesheets=[TABLE_CSS], sizing_mode="stretch_width", margin=(5, 10)
        )

    def update(self, frame: pd.DataFrame | None) -> None:
        text = table_html(frame, self.css_class, self.formats, self.long_text, self.max_height, links=self.links)
        if self.pane.object != text:
            self.pane.object = text


__all__ = ["LONG_CHARS", "MAX_CELL_CHARS", "MAX_ROWS", "TABLE_CSS", "HtmlTable", "Link", "number", "table_html"]
