"""The overview's charts as static SVG (svg_chart.py): what each bucket shows, and on hover."""

from __future__ import annotations

import math
import re

from llmgw_kernel.dashboard.svg_chart import HEIGHT, Layer, chart_svg, compact, nice_ticks

T0 = 1_800_000_000.0  # bucket starts, epoch seconds


def _tips(svg: str) -> list[str]:
    return re.findall(r'<rect class="hover"[^>]*><title>(.*?)</title></rect>', svg, re.S)


def _rects(path_d: str) -> list[tuple[float, float, float, float]]:
    """(x, y_low, width, y_top) of each rectangle of a bars path."""
    return [tuple(map(float, m)) for m in re.findall(r"M([\d.]+) ([\d.]+)h([\d.]+)V([\d.]+)h", path_d)]


def test_nice_ticks_reach_the_top_in_round_steps():
    assert nice_ticks(7_600) == [0, 2_000, 4_000, 6_000, 8_000]
    assert nice_ticks(1.0) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(0) == [0.0, 1.0] and nice_ticks(float("nan")) == [0.0, 1.0]
    assert compact(950) == "950" and compact(1_200) == "1.2k" and compact(3_400_000) == "3.4M"


def test_stacked_bars_are_as_high_as_their_sums_and_each_bucket_names_its_values():
    a, b = [1.0, 0.0, 3.0], [1.0, 2.0, math.nan]
    svg = chart_svg("Errors / min", [T0, T0 + 60, T0 + 120], 60, [Layer("x", "#111", a), Layer("y", "#222", b)])
    paths = dict(re.findall(r'<path fill="(#\d+)" d="([^"]+)"', svg))
    lower, upper = _rects(paths["#111"]), _rects(paths["#222"])
    assert len(lower) == 2 and len(upper) == 2  # a zero (or missing) value draws nothing
    # the top tick is 3 (sums 2, 2, 3) over the plot's 180 units: 60 a unit; y stacks on x
    assert [low - top for _, low, _, top in lower] == [60, 180]
    assert [low - top for _, low, _, top in upper] == [60, 120]
    assert upper[0][1] == lower[0][3]  # the first bucket's y starts where its x ends
    assert _tips(svg) == [
        "2027-01-15 08:00 UTC\nx: 1.0\ny: 1.0",
        "2027-01-15 08:01 UTC\nx: 0.0\ny: 2.0",
        "2027-01-15 08:02 UTC\nx: 3.0\ny: –",
    ]


def test_lines_break_where_a_bucket_has_no_value_and_a_lone_value_is_a_dot():
    v = [10.0, 20.0, math.nan, 5.0, math.nan]
    svg = chart_svg("Latency (ms)", [T0 + 60 * i for i in range(5)], 60, [Layer("p50", "#2ca02c", v)], kind="lines")
    (d,) = re.findall(r'<path fill="none" stroke="#2ca02c" stroke-width="1.5" d="([^"]+)"', svg)
    assert re.fullmatch(r"M[\d.]+ [\d.]+L[\d.]+ [\d.]+M[\d.]+ [\d.]+", d)  # 10 -> 20, then 5 alone
    assert svg.count("<circle") == 1
    assert _tips(svg)[2].endswith("p50: –")


def test_no_bucket_and_every_text_escaped():
    svg = chart_svg("<b>&", [], 60, [Layer("<i>", "#000", [])])
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and _tips(svg) == []
    assert f'viewBox="0 0 600 {HEIGHT}"' in svg and svg.endswith("</svg>")


def test_a_long_legend_wraps_and_the_plot_moves_down_by_its_rows():
    """Eight budgets' burn-downs name 16 lines: the legend wraps inside the drawing's width
    (it ran off its right edge) and the drawing grows by the added rows."""
    labels = [f"team:support-{i} / day{' forecast' * (i % 2)}" for i in range(16)]
    layers = [Layer(label, "#123456", [1.0, 2.0]) for label in labels]
    svg = chart_svg("Remaining USD", [T0, T0 + 60], 60, layers, kind="lines")
    entries = re.findall(r'<rect x="([\d.]+)" y="(\d+)" width="9" height="9"', svg)
    assert len(entries) == 16
    rows = sorted({int(y) for _, y in entries})
    assert len(rows) > 2 and all(b - a == 13 for a, b in zip(rows, rows[1:], strict=False))
    for (x, _), label in zip(entries, labels, strict=True):  # each entry's text ends inside the drawing
        assert float(x) + 12 + 6 * len(label) <= 600 - 12 + 10
    extra = 13 * (len(rows) - 1)
    assert f'viewBox="0 0 600 {HEIGHT + extra}"' in svg and f'<g transform="translate(0,{extra})">' in svg
    two = chart_svg("Two", [T0, T0 + 60], 60, layers[:2], kind="lines")  # one row: nothing moves
    assert f'viewBox="0 0 600 {HEIGHT}"' in two and '<g transform="translate(0,0)">' in two
