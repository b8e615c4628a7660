"""Small Bokeh charts the pages share: lines per group over time, updated in place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.palettes import Category10
from bokeh.plotting import figure

if TYPE_CHECKING:
    import pandas as pd

MAX_LINES = 10


class GroupLines:
    """One line per group of a long frame (``t``, ``group``, value column); up to
    :data:`MAX_LINES` groups, in a fixed set of renderers whose sources are swapped."""

    def __init__(self, title: str, y_label: str, height: int = 260) -> None:
        self.fig = figure(
            title=title, x_axis_type="datetime", height=height, sizing_mode="stretch_width",
            tools="xpan,xwheel_zoom,reset", toolbar_location="right",
        )  # fmt: skip
        self.fig.yaxis.axis_label = y_label
        self.fig.xaxis.axis_label = "UTC"
        self.sources = [ColumnDataSource({"t": [], "y": [], "group": []}) for _ in range(MAX_LINES)]
        self.lines = [
            self.fig.line(x="t", y="y", source=src, color=Category10[10][i], line_width=2, legend_label=f"#{i}")
            for i, src in enumerate(self.sources)
        ]
        # markers too: a window of one bucket (or a lone value) is a point, not a line
        self.markers = [
            self.fig.scatter(x="t", y="y", source=src, color=Category10[10][i], size=6, legend_label=f"#{i}")
            for i, src in enumerate(self.sources)
        ]
        self.fig.add_tools(
            HoverTool(tooltips=[("", "@group"), ("UTC", "@t{%F %H:%M}"), ("value", "@y{0,0.0000}")],
                      formatters={"@t": "datetime"})
        )  # fmt: skip
        legend = self.fig.legend[0]
        legend.orientation = "horizontal"
        legend.label_text_font_size = "8pt"
        legend.click_policy = "hide"
        self.fig.add_layout(legend, "above")

    def pane(self) -> pn.pane.Bokeh:
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width")

    def update(self, frame: pd.DataFrame, value: str) -> None:
        groups = list(dict.fromkeys(frame["group"]))[:MAX_LINES] if len(frame) else []
        items: list[Any] = list(self.fig.legend[0].items)
        for i, (src, line, marker) in enumerate(zip(self.sources, self.lines, self.markers, strict=True)):
            shown = i < len(groups)
            if shown:
                part = frame[frame["group"] == groups[i]]
                src.data = {"t": part["t"].to_numpy(), "y": part[value].to_numpy(), "group": part["group"].to_numpy()}
                items[i].label = {"value": str(groups[i])}
            else:
                src.data = {"t": [], "y": [], "group": []}
            line.visible = marker.visible = items[i].visible = shown


def set_if_changed(obj: Any, **values: Any) -> None:
    """Update Bokeh/Panel properties only when they differ (no needless websocket traffic)."""
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)


__all__ = ["GroupLines", "set_if_changed"]
