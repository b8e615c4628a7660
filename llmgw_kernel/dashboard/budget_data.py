"""The budgets page's data: each live budget's burn-down with a run-out forecast, and the
refusals (budget exceeded, rate limited) of the window.

The budgets and what they have spent come from the gateway (``/metrics``: the admission
state is the truth, including requests in flight); how the spend accrued over the budget's
current window comes from the log (cumulative ``cost_usd`` of the budget's subject). The
forecast extrapolates the last hour's burn rate: run-out = now + remaining / rate, shown
when it falls before the window ends. The burn-down's buckets span every charted budget's
window, start to end: the log's remaining USD up to now, the forecast from now (the live
remaining) to the run-out or the window's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .sql import REFUSED_SQL, bucket_sql, bucket_time_sql

if TYPE_CHECKING:
    import pandas as pd

    from .context import Context
    from .live import Budget

#: budget scope -> the log column naming its subject (global: every row)
SCOPE_COLUMNS = {"team": "team", "user": "end_user", "key": "key_id"}
BURN_RATE_S = 3600
MAX_CHARTED = 8


@dataclass(frozen=True, slots=True)
class BudgetRow:
    budget: Budget
    window_start: float
    window_end: float
    burn_usd_per_h: float  # the last hour's committed spend (from the log)
    run_out_ts: float | None  # when, at that rate, nothing remains (None: not before the window ends)


@dataclass(frozen=True, slots=True)
class BudgetData:
    live: bool  # False: the gateway's live state was not available
    budgets: tuple[BudgetRow, ...]
    burndown: pd.DataFrame  # t (bucket start), group (budget label), remaining_usd (log), forecast_usd
    refusals: pd.DataFrame  # admission, reason, requests
    refusal_series: pd.DataFrame  # t, group (admission), requests
    budget_refused: int
    rate_refused: int
    buckets: tuple[float, int, int] = (0.0, 60, 0)  # refusal_series': first bucket start (epoch s), width, count
    burndown_buckets: tuple[float, int, int] = (0.0, 60, 0)  # the burn-down's, over the charted windows


def label(b: Budget) -> str:
    return f"{b.scope}:{b.who or '*'} / {b.window}"


def nearest_out(b: Budget) -> tuple[float, str]:
    """The budgets' order on the page: the most used share of the limit (spent + in flight)
    first, so the table starts and the burn-down's :data:`MAX_CHARTED` lines are with the budgets
    nearest to running out — not the first names in alphabetical order (``/metrics``'), which
    with a budget for each team were whichever teams sort first."""
    used = (b.spent_usd + b.in_flight_usd) / b.limit_usd if b.limit_usd > 0 else math.inf
    return -used, label(b)


_REFUSALS_SQL = f"""
SELECT admission, coalesce(admission_reason, '') AS reason, count(*) AS requests
FROM requests WHERE {{where}} AND {REFUSED_SQL} GROUP BY ALL ORDER BY requests DESC, reason LIMIT 200
"""

_REFUSAL_SERIES_SQL = f"""
SELECT {{bucket_time}} AS t, admission AS "group", count(*) AS requests FROM (
    SELECT {{bucket}} AS i, admission FROM requests WHERE {{where}} AND {REFUSED_SQL}
) GROUP BY ALL ORDER BY 1, 2
"""

_SPEND_SQL = """
SELECT {bucket} AS i, coalesce(sum(cost_usd), 0) AS cost,
       coalesce(sum(cost_usd) FILTER (WHERE ts >= to_timestamp($rate_since)), 0) AS recent
FROM requests WHERE ts >= to_timestamp($start) AND ts <= to_timestamp($now) {subject}
GROUP BY 1 ORDER BY 1
"""


def budgets(ctx: Context, filters: Filters) -> BudgetData:
    """Live budgets with their burn-down; refusals in the filtered window."""
    snap = ctx.live.snapshot()
    live = tuple(sorted(snap.budgets, key=nearest_out)) if snap is not None else ()

    def compute(con: Any, now: float) -> BudgetData:
        import pandas as pd

        where, params = filters.where(now)
        refusals = con.execute(_REFUSALS_SQL.format(where=where), params).df()
        buckets = filters.buckets(now)
        start, width, _ = buckets
        sql = _REFUSAL_SERIES_SQL.format(
            where=where, bucket=bucket_sql(start, width), bucket_time=bucket_time_sql(start, width)
        )
        series = con.execute(sql, params).df()
        tz = _timezone(ctx) if live else "UTC"
        windows = [_window(b, now, tz) for b in live]
        grid = _grid(windows[:MAX_CHARTED], now)
        rows, frames = [], []
        for i, (b, window) in enumerate(zip(live, windows, strict=True)):
            row, frame = _burndown(con, b, window, now, grid if i < MAX_CHARTED else None)
            rows.append(row)
            if frame is not None:
                frames.append(frame)
        empty = pd.DataFrame({"t": [], "group": [], "remaining_usd": [], "forecast_usd": []})
        burndown = pd.concat(frames) if frames else empty
        counts = dict(zip(refusals["admission"], refusals["requests"], strict=False)) if len(refusals) else {}
        by_kind = refusals.groupby("admission")["requests"].sum().to_dict() if len(refusals) else counts
        return BudgetData(
            snap is not None, tuple(rows), burndown, refusals, series,
            int(by_kind.get("budget_exceeded", 0)), int(by_kind.get("rate_limited", 0)), buckets, grid,
        )  # fmt: skip

    # never kept as a settled window's answer: the burn-down and forecast run up to now
    return ctx.queries.answer(("budgets", filters, live), compute)


def _window(b: Budget, now: float, timezone: str) -> tuple[float, float]:
    """A budget's current window (epoch s): start, end."""
    from ..decisions.limits import window_bounds

    lo, hi = window_bounds(now, b.window, timezone)
    return lo.timestamp(), hi.timestamp()


def _grid(windows: list[tuple[float, float]], now: float) -> tuple[float, int, int]:
    """The burn-down's buckets: from the earliest window start to the latest window end."""
    if not windows:
        return (now, 60, 0)
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    width = Filters(since=start, until=end).bucket_s(end)
    first = math.floor(start / width) * width
    return first, width, max(1, math.ceil((end - first) / width))


def _burndown(
    con: Any, b: Budget, window: tuple[float, float], now: float, grid: tuple[float, int, int] | None
) -> tuple[BudgetRow, pd.DataFrame | None]:
    """One budget: its burn rate and run-out forecast, and (``grid`` given: it is charted) its
    remaining USD at each bucket's end, from the log up to now, then forecast (NaN elsewhere)."""
    import numpy as np
    import pandas as pd

    start, end = window
    g_start, width, n = grid if grid is not None else (start, 60, 0)
    column = SCOPE_COLUMNS.get(b.scope)
    subject = f"AND {column} = $who" if column and b.who else ""
    params: dict[str, Any] = {"start": start, "now": now, "rate_since": max(start, now - BURN_RATE_S)}
    if subject:
        params["who"] = b.who
    spend = con.execute(_SPEND_SQL.format(bucket=bucket_sql(g_start, width), subject=subject), params).df()
    rate_h = float(spend["recent"].sum()) * 3600 / max(1.0, now - params["rate_since"])
    run_out = now + b.remaining_usd / rate_h * 3600 if rate_h > 0 else None
    row = BudgetRow(b, start, end, rate_h, run_out if run_out is not None and run_out < end else None)
    if grid is None:
        return row, None
    starts = g_start + width * np.arange(n, dtype=float)
    ends = starts + width
    cost = np.zeros(n)
    inside = (spend["i"] >= 0) & (spend["i"] < n)
    np.add.at(cost, spend["i"][inside].to_numpy(dtype=np.int64), spend["cost"][inside].to_numpy(dtype=float))
    logged = np.where((ends > start) & (starts <= now), np.maximum(b.limit_usd - np.cumsum(cost), 0.0), np.nan)
    # the forecast: from now's bucket (the live remaining) down at the burn rate, to 0 or the window's end
    ahead = b.remaining_usd - rate_h * np.maximum(ends - now, 0.0) / 3600
    ahead[ahead <= 1e-9 * max(b.limit_usd, 1.0)] = 0.0  # the run-out's bucket is 0, not 4e-16
    reached = np.concatenate(([False], ahead[:-1] <= 0)) if n else np.zeros(0, bool)
    shown = (ends > now) & (starts < end) & ~reached
    forecast = np.where(shown, ahead, np.nan)
    frame = pd.DataFrame({
        "t": pd.to_datetime(starts, unit="s"), "group": label(b), "remaining_usd": logged, "forecast_usd": forecast,
    })  # fmt: skip
    return row, frame


def _timezone(ctx: Context) -> str:
    """The budgets' time zone from the policy file (calendar windows), else UTC."""
    if ctx.policy_path is not None:
        from ..policy.load import PolicyError, load_policy

        try:
            budgets = load_policy(ctx.policy_path).budgets
        except PolicyError:
            return "UTC"
        return getattr(budgets, "timezone", None) or "UTC"
    return "UTC"


__all__ = ["BudgetData", "BudgetRow", "budgets", "label", "nearest_out"]
