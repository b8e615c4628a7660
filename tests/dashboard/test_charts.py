"""The pages' shared charts: SvgLines (static SVG, no Bokeh figure) over every bucket of the
window, and the budgets page's burn-down with its run-out forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmgw_kernel.dashboard.charts import MAX_LINES


def _frame(groups: list[str]) -> pd.DataFrame:
    t = pd.to_datetime([0, 60], unit="s")
    return pd.DataFrame({"t": [*t] * len(groups), "group": [g for g in groups for _ in t],
                         "usd": [1.0, 2.0] * len(groups)})  # fmt: skip


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


def test_the_burn_down_shows_the_log_then_the_run_out_forecast():
    """The budgets page's burn-down (static SVG): a budget's remaining USD from the log up to now,
    then its forecast from now — the live remaining, down at the last hour's burn rate — reaching
    0 at the run-out, drawn as a second line ("<budget> forecast") that stops there."""
    import re
    from datetime import UTC, datetime

    import duckdb

    from dashboards.budgets import burndown_svg
    from llmgw_kernel.dashboard.budget_data import BudgetData, _burndown, _grid, _window
    from llmgw_kernel.dashboard.live import Budget

    day = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    now = day + 6 * 3600  # 06:00: $1 spent per hour since midnight, $6 of $10 -> runs out at 10:00
    con = duckdb.connect()
    con.execute("CREATE TABLE requests (ts TIMESTAMPTZ, cost_usd DOUBLE, team VARCHAR)")
    con.execute(
        "INSERT INTO requests SELECT to_timestamp($day + i * 60), 1 / 60, 'a' FROM range(360) t(i)", {"day": day}
    )
    b = Budget("team", "a", "day", "enforce", 10.0, spent_usd=6.0)
    window = _window(b, now, "UTC")
    assert window == (day, day + 86400)
    grid = _grid([window], now)
    row, frame = _burndown(con, b, window, now, grid)
    assert row.burn_usd_per_h == pytest.approx(1.0) and row.run_out_ts == pytest.approx(day + 10 * 3600)
    start, width, n = grid
    assert start == day and n * width >= 86400
    ends = start + width * (np.arange(n) + 1)
    logged, ahead = frame["remaining_usd"].to_numpy(), frame["forecast_usd"].to_numpy()
    assert np.isfinite(logged).sum() == np.count_nonzero(ends - width <= now)  # up to now's bucket
    assert logged[0] == pytest.approx(10 - width / 3600)
    at_run_out = int(np.flatnonzero(ends >= day + 10 * 3600)[0])
    assert ahead[at_run_out] == 0 and np.isnan(ahead[at_run_out + 1 :]).all()  # stops at the run-out
    assert np.isfinite(ahead).sum() == at_run_out + 1 - int(np.flatnonzero(ends > now)[0])
    data = BudgetData(True, (row,), frame, pd.DataFrame(), pd.DataFrame(), 0, 0, burndown_buckets=grid)
    svg = burndown_svg(data)
    assert "team:a / day forecast" in svg and svg.count('fill="none"') == 2  # two lines: the log's, the forecast
    tips = re.findall(r'<rect class="hover"[^>]*><title>(.*?)</title>', svg, re.S)
    assert "team:a / day forecast: $0.0000" in tips[at_run_out]
