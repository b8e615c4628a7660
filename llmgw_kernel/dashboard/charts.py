"""Small charts the pages share: lines per group over time, updated in place, as static SVG
(:class:`SvgLines`, :mod:`.svg_chart`: no Bokeh figure; no page draws a Bokeh figure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.palettes import Category10

from .svg_chart import Layer, chart_pane, chart_svg

if TYPE_CHECKING:
    import pandas as pd

MAX_LINES = 10


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


def set_if_changed(obj: Any, **values: Any) -> None:
    """Update Bokeh/Panel properties only when they differ (no needless websocket traffic)."""
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)


__all__ = ["SvgLines", "group_layers", "set_if_changed"]
