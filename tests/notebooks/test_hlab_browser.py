"""The notebooks as JupyterLab draws them, narrow and wide (found by HLAB, an analyst's outside test).

Markdown: JupyterLab typesets the text between two dollar signs as LaTeX, so tune_budgets'
"rounded up to $5; hard for teams that spend at least $10" showed "5; hard for teams that spend
at least " as an italic formula. Every notebook is opened (not run) and no markdown cell may
hold typeset math.

Controls:
``lab.live`` laid its controls out in three equal columns whatever the width: at 800 px, with
JupyterLab's file browser open, a column is ~140 px and policy_lab's "small %" slider (300 px:
ipywidgets' inline width) drew its readout over the "exact cache" checkbox next to it. The
controls now wrap instead. One small notebook (policy_lab's four controls through ``lab.live``)
in a real JupyterLab and headless Chromium, as a person opens it at 800 px and at 1400 px: no
two parts of two controls overlap, and at 1400 px they still share rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM
from test_jupyterlab import ACTIVE, NOTEBOOKS, _errors, _run_all, _wait_idle, browser, lab  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")

SOURCE = """import ipywidgets as widgets
from llmgw_kernel import lab

def render(small_weight, cache, shared_by, team_budget_usd):
    return [f"small {small_weight}%, cache {cache}, shared by {shared_by}, budget {team_budget_usd}"]

view = lab.live(render, {
    "small_weight": widgets.IntSlider(value=50, min=0, max=100, step=10, description="small %"),
    "cache": widgets.Checkbox(value=True, description="exact cache"),
    "shared_by": widgets.Dropdown(options=["team", "everyone"], value="everyone", description="shared by"),
    "team_budget_usd": widgets.FloatSlider(value=0.008, min=0.0, max=0.03, step=0.001, readout_format=".3f",
                                           description="USD/team/day"),
})"""

# every visible part of every control, with the index of the control it belongs to
PARTS_JS = """() => {
  const grid = document.querySelector('ACTIVE .widget-gridbox');
  const parts = [];
  [...grid.children].forEach((control, i) => control.querySelectorAll(
      '.widget-label, .widget-readout, .slider-container, .noUi-target, select, input[type=checkbox]')
    .forEach(e => { const r = e.getBoundingClientRect();
      if (r.width > 0) parts.push({i, cls: e.className || e.tagName, l: r.left, r: r.right, t: r.top, b: r.bottom}); }));
  return parts;
}""".replace("ACTIVE", ACTIVE)


def _overlaps(parts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    for a in parts:
        for b in parts:
            if (
                a["i"] < b["i"]
                and a["l"] < b["r"] - 1
                and b["l"] < a["r"] - 1
                and a["t"] < b["b"] - 1
                and b["t"] < a["b"] - 1
            ):
                found.append((f"control {a['i']} {a['cls']}", f"control {b['i']} {b['cls']}"))
    return found


def test_the_controls_of_a_notebook_never_draw_over_each_other_at_800_or_1400_px(
    lab: dict[str, Any],  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {}, "outputs": [],
                     "source": SOURCE}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    (Path(lab["root"]) / "hlab_narrow.ipynb").write_text(json.dumps(nb))
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # the toolbar folds its kernel status away at 800
    try:
        page.goto(f"{lab['url']}/lab/workspaces/hlab-narrow/tree/hlab_narrow.ipynb?reset&token={lab['token']}",
                  timeout=60_000)  # fmt: skip
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
        _run_all(page)
        _wait_idle(page, 1, 120)
        assert not _errors(page), _errors(page)
        page.wait_for_selector(f"{ACTIVE} .widget-gridbox .widget-readout", timeout=30_000)
        for width in (800, 1400):
            page.set_viewport_size({"width": width, "height": 900})
            # lumino lays the panel out on a later frame: wait for the notebook to take the new width
            page.wait_for_function(
                f"w => document.querySelector('{ACTIVE}').clientWidth {'<' if width == 800 else '>'} w",
                arg=800 if width == 800 else 1000,
                timeout=10_000,
            )
            parts = page.evaluate(PARTS_JS)
            assert len({p["i"] for p in parts}) == 4, parts
            assert not _overlaps(parts), f"at {width} px: {_overlaps(parts)}"
            if width == 1400:  # wide enough: controls share rows, not one per row
                assert len({round(p["t"]) for p in parts if p["cls"] == "widget-label"}) < 4, parts
    finally:
        page.close()


def test_no_notebook_shows_its_markdown_as_a_formula(lab: dict[str, Any], browser: Any) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        for nb in NOTEBOOKS:
            page.goto(f"{lab['url']}/lab/workspaces/hlab-md/tree/{nb.name}?reset&token={lab['token']}", timeout=60_000)
            page.wait_for_selector(f"{ACTIVE} .jp-MarkdownCell .jp-RenderedMarkdown h1", timeout=60_000)
            page.wait_for_timeout(1000)  # MathJax typesets after the first render
            math = page.locator(f"{ACTIVE} .jp-MarkdownCell mjx-container").all_inner_texts()
            assert not math, f"{nb.name}: markdown typeset as a formula: {math}"
    finally:
        page.close()
