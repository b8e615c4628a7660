"""The budgets page's data: each live budget's burn-down with a run-out forecast, and the
refusals (budget exceeded, rate limited) of the window.

The budgets and what they have spent come from the gateway (``/metrics``: the admission
state is the truth, including requests in flight); how the spend accrued over the budget's
current window comes from the log (cumulative ``cost_usd`` of the budget's subject). The
forecast extrapolates the last hour's burn rate: run-out = now + remaining / rate, shown
when it falls before the window ends.
"""

from __future__ import annotations

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
    burndown: pd.DataFrame  # t, group (budget label), remaining_usd
    refusals: pd.DataFrame  # admission, reason, requests
    refusal_series: pd.DataFrame  # t, group (admission), requests
    budget_refused: int
    rate_refused: int


def label(b: Budget) -> str:
    return f"{b.scope}:{b.who or '*'} / {b.window}"


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
    live = snap.budgets if snap is not None else ()

    def compute(con: Any, now: float) -> BudgetData:
        import pandas as pd

        where, params = filters.where(now)
        refusals = con.execute(_REFUSALS_SQL.format(where=where), params).df()
        start, width, _ = filters.buckets(now)
        sql = _REFUSAL_SERIES_SQL.format(
            where=where, bucket=bucket_sql(start, width), bucket_time=bucket_time_sql(start, width)
        )
        series = con.execute(sql, params).df()
        rows, frames = [], []
        for i, b in enumerate(live):
            row, frame = _burndown(con, ctx, b, now)
            rows.append(row)
            if i < MAX_CHARTED:
                frames.append(frame)
        burndown = pd.concat(frames) if frames else pd.DataFrame({"t": [], "group": [], "remaining_usd": []})
        counts = dict(zip(refusals["admission"], refusals["requests"], strict=False)) if len(refusals) else {}
        by_kind = refusals.groupby("admission")["requests"].sum().to_dict() if len(refusals) else counts
        return BudgetData(
            snap is not None, tuple(rows), burndown, refusals, series,
            int(by_kind.get("budget_exceeded", 0)), int(by_kind.get("rate_limited", 0)),
        )  # fmt: skip

    # never kept as a settled window's answer: the burn-down and forecast run up to now
    return ctx.queries.answer(("budgets", filters, live), compute)


def _burndown(con: Any, ctx: Context, b: Budget, now: float) -> tuple[BudgetRow, pd.DataFrame]:
    """One budget: remaining USD per bucket over its current window, and the forecast."""
    from ..decisions.limits import window_bounds

    lo, hi = window_bounds(now, b.window, _timezone(ctx))
    start, end = lo.timestamp(), hi.timestamp()
    width = Filters(since=start, until=now).bucket_s(now)
    column = SCOPE_COLUMNS.get(b.scope)
    subject = f"AND {column} = $who" if column and b.who else ""
    params: dict[str, Any] = {"start": start, "now": now, "rate_since": max(start, now - BURN_RATE_S)}
    if subject:
        params["who"] = b.who
    spend = con.execute(_SPEND_SQL.format(bucket=bucket_sql(start, width), subject=subject), params).df()
    spent_log = spend["cost"].cumsum()
    import pandas as pd

    times = pd.to_datetime(start + (spend["i"] + 1) * width, unit="s")
    frame = pd.DataFrame({"t": times, "group": label(b), "remaining_usd": (b.limit_usd - spent_log).clip(lower=0)})
    rate_h = float(spend["recent"].sum()) * 3600 / max(1.0, now - params["rate_since"])
    run_out = now + b.remaining_usd / rate_h * 3600 if rate_h > 0 else None
    return BudgetRow(b, start, end, rate_h, run_out if run_out is not None and run_out < end else None), frame


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


__all__ = ["BudgetData", "BudgetRow", "budgets", "label"]
