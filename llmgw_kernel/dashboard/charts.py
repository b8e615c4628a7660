"""Small Bokeh charts the pages share: lines per group over time, updated in place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool
from bokeh.palettes import Category10
from bokeh.plotting import figure

if TYPE_CHECKING:
    import pandas as pd

MAX_LINES = 10
#: the time axis's width when every point is at one instant (one bucket): an hour, in ms
ONE_POINT_SPAN_MS = 3_600_000


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


__all__ = ["GroupLines", "set_if_changed"]
