"""Time-series charts as static SVG in an HTML pane: no Bokeh figure.

A Bokeh figure costs the browser its view, its layout passes and a canvas paint, and the
dashboard process its models (the overview's four: 373 models, ~0.7 CPU s of Chromium per
load: docs/benchmarks.md). What the overview's charts answer — the traffic, errors by
outcome, latency and tokens minute by minute — needs none of its tools: the window and
filters choose the range (pan and zoom were the same range, re-drawn), and hovering a bucket
shows its time and every value of the chart there (an SVG ``<title>``, the browser's own
tooltip). A chart is one ``<svg class="llmgw-chart">`` with a fixed ``viewBox`` scaled to the
pane's width: bars (stacked when several layers) or lines (broken where a bucket had no
value, a lone value shown as a dot).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import panel as pn

#: the drawing's size in SVG units (scaled to the pane's width, aspect kept)
WIDTH, HEIGHT = 600, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 44, 26
_LEGEND_ROW = 13  # a legend row's height
#: a label's most characters in the legend and the tooltips, then "…" (a label can be a name a
#: client chose — a budget's team — of any length: uncut, one made the legend rows, and the SVG
#: that repeats it in every bucket's tooltip, as long as the name); the whole label, up to
#: MAX_TITLE_CHARS, is the legend entry's own tooltip
LABEL_CHARS = 48
MAX_TITLE_CHARS = 1000
Scale = Callable[[float], float]
_TICK_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)

CHART_CSS = """
svg.llmgw-chart { width: 100%; height: auto; display: block; font-family: sans-serif; }
svg.llmgw-chart text { font-size: 10px; fill: #444; }
svg.llmgw-chart text.title { font-size: 12px; font-weight: 600; fill: #222; }
svg.llmgw-chart .grid { stroke: #e5e5e5; stroke-width: 1; }
svg.llmgw-chart .axis { stroke: #888; stroke-width: 1; }
svg.llmgw-chart rect.hover { fill: transparent; }
svg.llmgw-chart rect.hover:hover { fill: rgba(0, 0, 0, 0.06); }
"""


@dataclass(frozen=True)
class Layer:
    """One series of a chart: its legend label, colour and a value per bucket (NaN: none)."""

    label: str
    color: str
    values: Sequence[float] | np.ndarray


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round values from 0 to at least ``top`` (about ``count`` steps)."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def compact(value: float) -> str:
    """A tick label: 950, 1.2k, 3.4M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _time_label(t: float, step_s: int) -> str:
    d = datetime.fromtimestamp(t, UTC)
    if step_s >= 86400:
        return f"{d:%m-%d}"
    return f"{d:%H:%M}" if step_s < 3600 or d.hour or d.minute else f"{d:%m-%d %H:%M}"


def chart_svg(
    title: str,
    starts: Sequence[float] | np.ndarray,
    bucket_s: float,
    layers: Sequence[Layer],
    kind: str = "bars",
    value_format: str = "{:,.1f}",
) -> str:
    """The SVG of a chart of ``layers`` over buckets starting at ``starts`` (epoch seconds,
    ``bucket_s`` wide): ``kind`` "bars" (stacked, NaN as 0) or "lines". Every text is escaped;
    labels are cut at :data:`LABEL_CHARS`."""
    t = np.asarray(starts, dtype=float)
    n = len(t)
    values = [np.asarray(layer.values, dtype=float) for layer in layers]
    x0, x1 = (float(t[0]), float(t[-1]) + bucket_s) if n else (0.0, 1.0)
    if kind == "bars":
        stacked = np.cumsum([np.nan_to_num(v) for v in values], axis=0) if values and n else np.zeros((1, n))
        top = float(stacked[-1].max()) if n else 0.0
    else:
        finite = [v[np.isfinite(v)] for v in values]
        top = max((float(f.max()) for f in finite if len(f)), default=0.0)
    ticks = nice_ticks(top)
    y_max = ticks[-1]
    pw, ph = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return _TOP + ph - y / y_max * ph

    legend, rows = _legend(layers)
    extra = _LEGEND_ROW * max(rows - 1, 0)  # a legend of several rows pushes the plot down
    out = [
        f'<svg class="llmgw-chart" data-chart="{html.escape(title)}" data-bucket-s="{bucket_s:g}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT + extra}" xmlns="http://www.w3.org/2000/svg" role="img">'
        f"<title>{html.escape(title)}</title>",
        f'<text class="title" x="{_LEFT}" y="14">{html.escape(title)}</text>',
        *legend,
        f'<g transform="translate(0,{extra})">',
    ]
    for tick in ticks:  # horizontal grid and the y axis's labels
        y = sy(tick)
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{compact(tick)}</text>')
    out += _time_axis(x0, x1, sx, _TOP + ph)
    if n:
        out += (
            _bars(t, bucket_s, stacked, layers, sx, sy)
            if kind == "bars"
            else _lines(t, bucket_s, values, layers, sx, sy)
        )
        out += _hover(t, bucket_s, values, layers, sx, ph, value_format)
    out.append("</g></svg>")
    return "".join(out)


def _legend(layers: Sequence[Layer]) -> tuple[list[str], int]:
    """The legend's elements and its number of rows: an entry that would pass the drawing's
    right edge starts a new row (a budgets burn-down names two lines per budget)."""
    if len(layers) < 2:
        return [], 0
    out, x, y, rows = [], float(_LEFT), 22, 1
    for layer in layers:
        width = 22 + 6 * len(_cut(layer.label, LABEL_CHARS))
        if x > _LEFT and x + width - 10 > WIDTH - _RIGHT:
            x, y, rows = float(_LEFT), y + _LEGEND_ROW, rows + 1
        out.append(f'<rect x="{x:.1f}" y="{y}" width="9" height="9" fill="{html.escape(layer.color)}"/>')
        label = _cut(layer.label, LABEL_CHARS)
        title = f"<title>{html.escape(_cut(layer.label, MAX_TITLE_CHARS))}</title>" if label != layer.label else ""
        out.append(f'<text x="{x + 12:.1f}" y="{y + 8}">{title}{html.escape(label)}</text>')
        x += width
    return out, rows


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time_axis(x0: float, x1: float, sx: Scale, base: float) -> list[str]:
    span = x1 - x0
    # past the steps (a window of years): whole weeks, still at most 6 ticks
    step = next((s for s in _TICK_STEPS_S if span / s <= 6), math.ceil(span / 6 / 604800) * 604800)
    out = [f'<line class="axis" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{base:.1f}" y2="{base:.1f}"/>']
    tick = math.ceil(x0 / step) * step
    while tick <= x1:
        x = sx(tick)
        out.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base:.1f}" y2="{base + 4:.1f}"/>')
        out.append(f'<text x="{x:.1f}" y="{base + 15:.1f}" text-anchor="middle">{_time_label(tick, step)}</text>')
        tick += step
    out.append(f'<text x="{WIDTH - _RIGHT}" y="{base + 24:.1f}" text-anchor="end">UTC</text>')
    return out


def _bars(
    t: np.ndarray, bucket_s: float, stacked: np.ndarray, layers: Sequence[Layer], sx: Scale, sy: Scale
) -> list[str]:
    out = []
    for k, layer in enumerate(layers):
        low = stacked[k - 1] if k else np.zeros(len(t))
        parts = []
        for i in np.flatnonzero(stacked[k] > low):  # one path per layer: a rectangle per bucket
            x = sx(t[i] + 0.1 * bucket_s)
            w = sx(t[i] + 0.9 * bucket_s) - x
            y_top, y_low = sy(stacked[k][i]), sy(low[i])
            parts.append(f"M{x:.1f} {y_low:.1f}h{w:.1f}V{y_top:.1f}h{-w:.1f}Z")
        if parts:
            out.append(f'<path fill="{html.escape(layer.color)}" d="{"".join(parts)}"/>')
    return out


def _lines(
    t: np.ndarray, bucket_s: float, values: list[np.ndarray], layers: Sequence[Layer], sx: Scale, sy: Scale
) -> list[str]:
    out = []
    mid = t + bucket_s / 2
    for v, layer in zip(values, layers, strict=True):
        color = html.escape(layer.color)
        parts, dots, run = [], [], 0
        for i, value in enumerate(v):
            if not math.isfinite(value):
                run = 0
                continue
            x, y = sx(mid[i]), sy(value)
            parts.append(f"{'L' if run else 'M'}{x:.1f} {y:.1f}")
            alone = (i == 0 or not math.isfinite(v[i - 1])) and (i + 1 == len(v) or not math.isfinite(v[i + 1]))
            if alone:
                dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
            run += 1
        if parts:
            out.append(f'<path fill="none" stroke="{color}" stroke-width="1.5" d="{"".join(parts)}"/>')
        out += dots
    return out


def _hover(
    t: np.ndarray,
    bucket_s: float,
    values: list[np.ndarray],
    layers: Sequence[Layer],
    sx: Scale,
    ph: float,
    value_format: str,
) -> list[str]:
    """A transparent column per bucket whose tooltip is its time and every layer's value."""
    out, labels = [], [_cut(layer.label, LABEL_CHARS) for layer in layers]
    for i in range(len(t)):
        x, w = sx(t[i]), sx(t[i] + bucket_s) - sx(t[i])
        lines = [f"{datetime.fromtimestamp(t[i], UTC):%Y-%m-%d %H:%M} UTC"]
        for v, label in zip(values, labels, strict=True):
            value = v[i]
            lines.append(f"{label}: {value_format.format(value) if math.isfinite(value) else '–'}")
        tip = html.escape("\n".join(lines))
        out.append(
            f'<rect class="hover" x="{x:.1f}" y="{_TOP}" width="{w:.1f}" height="{ph:.1f}"><title>{tip}</title></rect>'
        )
    return out


def chart_pane() -> pn.pane.HTML:
    """An HTML pane for one chart (its SVG set by ``pane.object = chart_svg(...)``). In a
    ``pn.FlexBox``, two charts share a row of 1,000 px or more; on a narrower screen each takes a
    row of its own (the SVG scales its text with its width: at half of 800 px it was 6 px)."""
    return pn.pane.HTML(
        "", stylesheets=[CHART_CSS], sizing_mode="stretch_width", margin=(5, 10), styles={"flex": "1 1 460px"}
    )


def alone(pane: pn.pane.HTML) -> pn.FlexBox:
    """A chart pane on a row of its own, for a page's column. Put directly in a ``pn.Column``,
    the pane's ``flex: 1 1 460px`` (the share of a row of two) is a *height*: the pane was 460 px
    high whatever its SVG's, so a taller chart — the budgets burn-down, its legend two lines per
    budget — was drawn over the chart below it, and a shorter one left a gap."""
    return pn.FlexBox(pane, sizing_mode="stretch_width")


__all__ = ["CHART_CSS", "HEIGHT", "WIDTH", "Layer", "alone", "chart_pane", "chart_svg", "compact", "nice_ticks"]
