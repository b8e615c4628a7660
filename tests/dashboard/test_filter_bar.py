"""The filter bar is one model of plain HTML (frame.FilterForm), not eight Bokeh widgets.

Before, the bar was a RadioButtonGroup, six Select widgets and a FlexBox: eight Bokeh models
and views (each with its own shadow root and stylesheets), ~2,000 of a page's ~2,700 DOM nodes
and ~0.1 CPU s of the browser's renderer per page load (docs/benchmarks.md, H14B). The browser
tests (test_pages.py, test_dashboard.py) drive the form itself: its selects, its buttons."""

from __future__ import annotations

import pytest

pn = pytest.importorskip("panel")

from llmgw_kernel.dashboard import frame  # noqa: E402
from llmgw_kernel.dashboard.filters import COLUMNS, PRESETS, Filters  # noqa: E402
from llmgw_kernel.dashboard.frame import ALL, CUSTOM, FilterBar  # noqa: E402


def _models(viewable) -> set[str]:
    doc_model = viewable.get_root()
    return {type(m).__name__ for m in doc_model.references()}


def test_the_filter_bar_is_one_form_and_no_bokeh_widget():
    bar = FilterBar(None, Filters(team="search", since=1.0, until=2.0), "/cost")
    panes = bar.panes()
    assert not any(isinstance(w, pn.widgets.Widget) for p in panes for w in p.select(pn.widgets.Widget))
    names = _models(pn.Column(*panes))
    assert not names & {"Select", "CustomSelect", "RadioButtonGroup", "FlexBox"}, names
    assert [type(p) for p in panes][1:] == [frame.FilterForm]
    form = bar.form
    assert form.labels == ["Route", "Team", "Key", "User", "Model", "Provider"]
    assert form.values == [ALL, "search", ALL, ALL, ALL, ALL]
    assert form.windows == [*PRESETS, CUSTOM] and form.window == CUSTOM


def test_a_choice_in_the_form_changes_the_filters_and_the_links():
    bar = FilterBar(None, Filters(since=1.0, until=2.0), "/cost")
    changed = []
    bar.watch(lambda: changed.append(bar.filters))
    values = list(bar.form.values)
    values[list(COLUMNS).index("team")] = "analytics"
    bar.form.values = values
    assert changed[-1].team == "analytics" and changed[-1].since == 1.0
    assert "team=analytics" in bar.nav.html
    bar.form.window = "15 min"  # a preset drops the explicit range and the "custom" button
    assert changed[-1].window == "15 min" and changed[-1].since is None and changed[-1].team == "analytics"
    assert bar.form.windows == list(PRESETS)
    bar.show_options({"team": ["analytics", "search"]})
    assert bar.form.options[1] == [ALL, "analytics", "search"]
    bar.show_options({"team": ["search"]})  # the chosen value stays selectable
    assert bar.form.options[1] == [ALL, "search", "analytics"]
