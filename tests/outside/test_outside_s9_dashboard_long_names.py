"""Outside-style: a name a client chose, 20,000 characters long, on the dashboards' tables and charts.

By hand (open mode, `metadata.team` = "H" * 20,000, then /cost and /budgets in Chromium at
1400 px): the cost page's top spenders and the budgets page's live budgets showed only their
name column — one row's name made the table 100,000+ px wide and pushed the spend, limit and
remaining of every row off the screen; the budgets burn-down's legend, one entry per budget
named after the team, grew by rows and the SVG repeated the whole name in every bucket's
tooltip. Only the columns declared long text (error messages) were cut. Expected: every text
cell kept to one line of bounded width with an ellipsis (the text on hover), at most
``MAX_CELL_CHARS`` characters sent; chart labels cut in the legend and tooltips.

The tables and charts are the dashboards' own HTML (`html_table.table_html`, `svg_chart.chart_svg`
with their CSS), laid out by headless Chromium.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS

pytest.importorskip("panel")

from llmgw_kernel.dashboard.html_table import TABLE_CSS, table_html  # noqa: E402
from llmgw_kernel.dashboard.svg_chart import HEIGHT, Layer, chart_svg  # noqa: E402

HUGE = "H" * 20_000


def test_a_huge_name_keeps_the_tables_figures_on_screen_and_the_html_bounded() -> None:
    frame = pd.DataFrame({"group": ["search", HUGE, "<b>ops</b>"], "spend_usd": [0.0123, 0.0042, 0.001],
                          "requests": [240, 3, 12]})  # fmt: skip
    html = table_html(frame, "llmgw-top")
    assert "&lt;b&gt;ops&lt;/b&gt;" in html and "<b>" not in html
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_content(f"<html><head><style>{TABLE_CSS}</style></head><body>{html}</body></html>")
            rights = page.eval_on_selector_all("td.num", "cells => cells.map(c => c.getBoundingClientRect().right)")
            hover = page.eval_on_selector_all("td[title]", "cells => cells.map(c => c.title.length)")
        finally:
            browser.close()
    assert len(rights) == 6 and max(rights) <= 1400, rights  # every figure within the window's width
    assert hover and max(hover) <= 1_001, hover
    assert len(html) < 6_000, len(html)  # the name is cut before it is sent (twice: text and hover)


def test_a_huge_label_keeps_the_legend_and_the_svg_bounded() -> None:
    starts = np.arange(60) * 60.0 + 1_796_000_000
    layers = [Layer(f"team:{name} / day", color, np.linspace(0.02, 0.0, 60))
              for name, color in ((HUGE, "#1f77b4"), ("search", "#ff7f0e"), (HUGE + "x", "#2ca02c"))]  # fmt: skip
    svg = chart_svg("Remaining USD", starts, 60, layers, kind="lines")
    assert len(svg) < 60_000, len(svg)  # uncut: the name in each of 60 buckets' tooltips, 3.6 MB
    view = svg.split('viewBox="0 0 ')[1].split('"')[0]
    assert float(view.split()[1]) <= HEIGHT + 13, view  # three short entries: at most two legend rows
