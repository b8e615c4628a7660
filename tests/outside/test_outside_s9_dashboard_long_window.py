"""Outside-style: a dashboard address with a window of decades (`/overview?since=0`, `until=9998-…`).

By hand: `/overview?since=0&until=1e300` (until ignored: now) asked for 20,794 daily buckets —
the bucket widths stopped at one day — so each of the overview's four charts was a 4 MB SVG with
20,794 hover columns and 2,977 axis labels (drawn as a grey bar), and Chromium had not drawn the
page after 2 minutes; `until=9998-12-31` made 2.9 million buckets. Expected: at most
``MAX_BUCKETS`` buckets and a few axis labels whatever the window, the page drawn as any other.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS

pytest.importorskip("panel")

from llmgw_kernel.dashboard.filters import MAX_BUCKETS, Filters, parse_time  # noqa: E402
from llmgw_kernel.dashboard.svg_chart import Layer, chart_svg  # noqa: E402


@pytest.mark.parametrize("since, until", [(0.0, None), (None, "9998-12-31T00:00:00"), (0.0, "9998-12-31T00:00:00")])
def test_a_window_of_decades_has_few_buckets_and_axis_labels(since, until) -> None:
    now = time.time()
    filters = Filters(since=since if since is not None else now - 3600, until=parse_time(until) if until else now)
    start, width, n = filters.buckets(now)
    assert n <= MAX_BUCKETS + 1, (width, n)
    starts = start + width * np.arange(n, dtype=float)
    svg = chart_svg(
        "Requests / min", starts, width, [Layer("a", "#1f77b4", np.ones(n)), Layer("b", "#ff7f0e", np.ones(n))]
    )
    assert len(svg) < 60_000 and svg.count("<text") <= 16, (len(svg), svg.count("<text"))


def test_the_overview_over_decades_is_drawn(gateway) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{gateway.url}/overview?since=0&until=1e300", timeout=120_000)
            page.wait_for_selector("[data-ready]", state="attached", timeout=90_000)
            sizes = page.evaluate("""() => { const out = []; const walk = (root) => {
                for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) walk(el.shadowRoot);
                  if (el.tagName === 'svg' && el.classList.contains('llmgw-chart')) out.push(el.outerHTML.length); } };
                walk(document); return out; }""")
        finally:
            browser.close()
    assert len(sizes) == 4 and max(sizes) < 100_000, sizes
