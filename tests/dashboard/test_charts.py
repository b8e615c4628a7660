"""GroupLines makes its renderers on first data (an empty chart sends no glyphs) and reuses
them: fewer Bokeh models per page, so a lighter document to build, send and lay out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmgw_kernel.dashboard.charts import MAX_LINES, GroupLines


def _frame(groups: list[str]) -> pd.DataFrame:
    t = pd.to_datetime([0, 60], unit="s")
    return pd.DataFrame({"t": [*t] * len(groups), "group": [g for g in groups for _ in t],
                         "usd": [1.0, 2.0] * len(groups)})  # fmt: skip


def test_an_empty_chart_has_no_glyphs_until_data_arrives():
    chart = GroupLines("spend", "USD")
    assert chart.fig.renderers == []
    chart.update(_frame([]), "usd")
    assert chart.fig.renderers == []
    chart.update(_frame(["a", "b", "c"]), "usd")
    assert len(chart.fig.renderers) == 6  # a line and markers per group, not per MAX_LINES
    assert [item.label["value"] for item in chart.fig.legend[0].items] == ["a", "b", "c"]
    assert list(chart.sources[1].data["y"]) == [1.0, 2.0]


def test_renderers_are_reused_and_hidden_not_rebuilt():
    chart = GroupLines("spend", "USD")
    chart.update(_frame(["a", "b", "c"]), "usd")
    first = list(chart.fig.renderers)
    chart.update(_frame(["x"]), "usd")
    assert chart.fig.renderers == first
    assert [r.visible for r in chart.lines] == [True, False, False]
    assert len(chart.sources[2].data["t"]) == 0
    chart.update(_frame([f"g{i}" for i in range(MAX_LINES + 3)]), "usd")
    assert len(chart.lines) == MAX_LINES and all(r.visible for r in chart.lines)


def test_a_window_of_one_bucket_spans_an_hour_not_two_milliseconds():
    """Every point at one instant (a window of one bucket): Bokeh's DataRange1d then spans
    ``default_span`` around it, 2 (ms) unless set — an axis ticked in microseconds (seen in the
    pages' screenshots). The time axis spans an hour instead."""
    chart = GroupLines("spend", "USD")
    assert chart.fig.x_range.default_span == 3_600_000


def test_svg_lines_cover_every_bucket_of_the_window():
    """SvgLines draws every bucket of the window: one the frame lacks is 0 for a sum, a gap for a
    ratio (missing=None); groups in the frame's order, at most MAX_LINES, labels renamed."""
    import math
    import re

    from llmgw_kernel.dashboard.charts import SvgLines, group_layers

    frame = _frame(["a", "b"])  # buckets at 0 and 60 s of a window of four 60 s buckets from 0
    starts = 60.0 * np.arange(4)
    sums = group_layers(frame, "usd", starts, 0.0, {"a": "A"})
    assert [layer.label for layer in sums] == ["A", "b"] and list(sums[1].values) == [1.0, 2.0, 0.0, 0.0]
    ratios = group_layers(frame, "usd", starts, None)
    assert list(ratios[0].values[:2]) == [1.0, 2.0] and all(math.isnan(v) for v in ratios[0].values[2:])
    assert len(group_layers(_frame([f"g{i}" for i in range(MAX_LINES + 2)]), "usd", starts)) == MAX_LINES
    chart = SvgLines("spend", "{:.2f}")
    chart.update(frame, "usd", (0.0, 60, 4))
    tips = re.findall(r'<rect class="hover"[^>]*><title>(.*?)</title>', chart.pane.object, re.S)
    assert [t.split("\n", 1)[1] for t in tips] == ["a: 1.00\nb: 1.00", "a: 2.00\nb: 2.00"] + ["a: 0.00\nb: 0.00"] * 2
