"""Small charts the pages share: lines per group over time, updated in place — as static SVG
(:class:`SvgLines`, :mod:`.svg_chart`: no Bokeh figure) or as a Bokeh figure (:class:`GroupLines`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool
from bokeh.palettes import Category10
from bokeh.plotting import figure

from .svg_chart import Layer, chart_pane, chart_svg

if TYPE_CHECKING:
    import pandas as pd

MAX_LINES = 10
#: the time axis's width when every point is at one instant (one bucket): an hour, in ms
ONE_POINT_SPAN_MS = 3_600_000


class SvgLines:
    """One line per group of a long frame (``t``, ``group``, value column; up to
    :data:`MAX_LINES` groups) over every bucket of the window, as a static SVG chart in an HTML
    pane: no Bokeh figure (its view, layout and canvas cost the browser; no pan or zoom: the
    window and filters choose the range), a bucket's time and every line's value on hover. A
    bucket the frame lacks is ``missing`` (0 for sums; None for a ratio: a gap in the line)."""

    def __init__(
        self, title: str, value_format: str = "{:,.4f}", missing: float | None = 0.0,
        labels: Mapping[str, str] | None = None, max_width: int | None = None,
    ) -> None:  # fmt: skip
        """``max_width`` (px) bounds a chart alone in its row: the drawing scales with the pane's
        width, text and all (a 1400 px wide one is 580 px high, its labels 2.3 times their size)."""
        self.title, self.value_format, self.missing = title, value_format, missing
        self.labels = dict(labels or {})
        self.pane = chart_pane()
        if max_width is not None:
            self.pane.max_width = max_width

    def update(self, frame: pd.DataFrame, value: str, buckets: tuple[float, int, int]) -> None:
        """Show ``frame`` over ``buckets`` (first bucket start in epoch s, width in s, count)."""
        start, width, n = buckets
        starts = start + width * np.arange(n, dtype=float)
        layers = group_layers(frame, value, starts, self.missing, self.labels)
        set_if_changed(self.pane, object=chart_svg(self.title, starts, width, layers, "lines", self.value_format))


def group_layers(
    frame: pd.DataFrame,
    value: str,
    starts: np.ndarray,
    missing: float | None = 0.0,
    labels: Mapping[str, str] | None = None,
) -> list[Layer]:
    """One layer per group of a long frame (``t``: the bucket's start, ``group``, ``value``),
    in the frame's order, up to :data:`MAX_LINES`, over the buckets starting at ``starts`` (epoch s)."""
    import pandas as pd

    labels = labels or {}
    seconds = (frame["t"] - pd.Timestamp(0)).dt.total_seconds().to_numpy() if len(frame) else np.array([])
    layers = []
    for k, group in enumerate(list(dict.fromkeys(frame["group"]))[:MAX_LINES]):
        rows = (frame["group"] == group).to_numpy()
        values = pd.Series(frame[value].to_numpy(dtype=float)[rows], index=seconds[rows]).reindex(starts)
        if missing is not None:
            values = values.fillna(missing)
        layers.append(Layer(labels.get(str(group), str(group)), Category10[10][k], values.to_numpy()))
    return layers


class GroupLines:
    """One line per group of a long frame (``t``, ``group``, value column); up to
    :data:`MAX_LINES` groups. Renderers are made on first data, one per group ever shown
    (an empty chart sends a figure without glyphs), and reused: their sources are swapped."""

    def __init__(self, title: str, y_label: str, height: int = 260) -> None:
        self.fig = figure(
            title=title, x_axis_type="datetime", height=height, sizing_mode="stretch_width",
            # a window of one bucket is one instant: Bokeh's default span for it is 2 ms (ticks in µs)
            x_range=DataRange1d(default_span=ONE_POINT_SPAN_MS),
            tools="xpan,xwheel_zoom,reset", toolbar_location="right",
        )  # fmt: skip
        self.fig.yaxis.axis_label = y_label
        self.fig.xaxis.axis_label = "UTC"
        self.sources: list[ColumnDataSource] = []
        self.lines: list[Any] = []
        self.markers: list[Any] = []
        self.fig.add_tools(
            HoverTool(tooltips=[("", "@group"), ("UTC", "@t{%F %H:%M}"), ("value", "@y{0,0.0000}")],
                      formatters={"@t": "datetime"})
        )  # fmt: skip

    def pane(self) -> pn.pane.Bokeh:
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width")

    def update(self, frame: pd.DataFrame, value: str) -> None:
        groups = list(dict.fromkeys(frame["group"]))[:MAX_LINES] if len(frame) else []
        self._grow(len(groups))
        items: list[Any] = list(self.fig.legend[0].items) if self.lines else []
        for i, (src, line, marker) in enumerate(zip(self.sources, self.lines, self.markers, strict=True)):
            shown = i < len(groups)
            if shown:
                part = frame[frame["group"] == groups[i]]
                src.data = {"t": part["t"].to_numpy(), "y": part[value].to_numpy(), "group": part["group"].to_numpy()}
                items[i].label = {"value": str(groups[i])}
            elif len(src.data["t"]):
                src.data = dict(_EMPTY)
            line.visible = marker.visible = items[i].visible = shown

    def _grow(self, n: int) -> None:
        """Add renderers until there are ``n`` (the legend, above the plot, with the first)."""
        for i in range(len(self.sources), n):
            src = ColumnDataSource(dict(_EMPTY))
            color = Category10[10][i]
            self.sources.append(src)
            self.lines.append(self.fig.line(x="t", y="y", source=src, color=color, line_width=2, legend_label=f"#{i}"))
            # markers too: a window of one bucket (or a lone value) is a point, not a line
            self.markers.append(self.fig.scatter(x="t", y="y", source=src, color=color, size=6, legend_label=f"#{i}"))
            if i == 0:
                legend = self.fig.legend[0]
                legend.orientation = "horizontal"
                legend.label_text_font_size = "8pt"
                legend.click_policy = "hide"
                self.fig.add_layout(legend, "above")


_EMPTY: dict[str, list[Any]] = {"t": [], "y": [], "group": []}


def set_if_changed(obj: Any, **values: Any) -> None:
    """Update Bokeh/Panel properties only when they differ (no needless websocket traffic)."""
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)


__all__ = ["GroupLines", "SvgLines", "group_layers", "set_if_changed"]
