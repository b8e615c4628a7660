"""Outside-style: a chart alone on its row (budgets burn-down, refusals; cost; guardrails) in Chromium.

By hand (eight team budgets): the budgets page's burn-down — its legend two lines per budget,
several rows — was drawn over the "Refusals" heading and chart below it (burn-down SVG from
y=725, 633 px high; the refusals chart at y=1239), and a short chart left a gap under it. Each
such chart pane sat directly in the page's column, where its `flex: 1 1 460px` (meant for a row
of two charts) is a height: 460 px whatever the SVG's. Expected: every chart ends above what
follows it.

A real `llmgw serve` with a budget for each of ten teams, the page in headless Chromium.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, policy_for, wait_for_rows

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
pytest.importorskip("panel")
pytest.importorskip("playwright")

# every chart and every table of the document (Panel's panes live in shadow roots), top to bottom
BOXES = """() => {
  const out = [];
  const walk = (root) => { for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) walk(el.shadowRoot);
    if ((el.tagName === 'svg' && el.classList.contains('llmgw-chart')) || el.tagName === 'TABLE') {
      const r = el.getBoundingClientRect();
      out.push([el.tagName === 'TABLE' ? 'table' : el.dataset.chart, r.top, r.bottom]);
    } } };
  walk(document);
  return out.sort((a, b) => a[1] - b[1]);
}"""


def test_no_chart_is_drawn_over_what_follows_it(make_gateway, upstream) -> None:
    from playwright.sync_api import sync_playwright

    policy = policy_for(upstream.base_url, budgets={"limits": [{"scope": "team", "usd": 1.0, "window": "day"}]},
                        pricing={"demo-echo": {"input_per_1m": 1000.0, "output_per_1m": 1000.0}})  # fmt: skip
    gw = make_gateway(policy)
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    teams = [f"team-with-a-longer-name-{i:02d}" for i in range(10)]
    for i, team in enumerate(teams):
        for k in range(i + 1):
            client.chat.completions.create(model="demo", messages=[{"role": "user", "content": f"q {team} {k}"}],
                                           metadata={"team": team})  # fmt: skip
    wait_for_rows(gw, "team IS NOT NULL", n=55)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            found = {}
            for path in ("budgets", "cost"):
                page.goto(f"{gw.url}/{path}?window=1+h", timeout=120_000)
                page.wait_for_selector("[data-ready]", state="attached", timeout=120_000)
                page.wait_for_function(f"({BOXES})().filter(b => b[0] !== 'table').length >= 1", timeout=60_000)
                found[path] = page.evaluate(BOXES)
        finally:
            browser.close()
    for path, boxes in found.items():
        charts = [i for i, b in enumerate(boxes) if b[0] != "table"]
        assert charts, (path, boxes)
        for i in charts:
            if i + 1 < len(boxes):
                assert boxes[i][2] <= boxes[i + 1][1] + 0.5, (path, boxes[i], boxes[i + 1])
    assert any("Remaining USD" in str(b[0]) for b in found["budgets"]), found["budgets"]
