"""The overview dashboard's data: filters in, cached DuckDB query results out.

Views only render what :meth:`OverviewStore.overview` returns; every figure on the page is
computed here, from the request log (``open_log``), so a notebook can ask the same question::

    >>> import tempfile
    >>> store = OverviewStore(tempfile.mkdtemp())
    >>> store.overview("1 h").headline.requests
    0

Results are cached per filter for ``ttl_s`` seconds and shared by every browser session,
so ten open dashboards refreshing every 5 s still cost one query per filter per ``ttl_s``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .queries import LogQueries
from .sql import (
    CHECK_SQL,
    CLIENT_SQL,
    ERROR_SQL,
    FELL_BACK_SQL,
    HIT_SQL,
    RESCUED_SQL,
    RETRIED_SQL,
    UPSTREAM_FAILED_SQL,
    bucket_sql,
    bucket_time_sql,
    client_rows,
)  # fmt: skip

if TYPE_CHECKING:
    import pandas as pd

ERROR_OUTCOMES: tuple[str, ...] = (
    "client_error", "limited", "upstream_error", "timeout", "no_target", "abandoned", "error",
)  # fmt: skip
RECENT_COLUMNS: tuple[str, ...] = (
    "ts", "request_id", "route", "target", "status", "outcome", "cache", "latency_ms", "ttft_ms",
    "prompt_tokens", "completion_tokens", "cost_usd", "team", "key_id", "end_user", "error_message",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    """A look-back window and the width of its chart buckets."""

    label: str
    seconds: int
    bucket_s: int


WINDOWS: dict[str, Window] = {
    w.label: w for w in (Window("15 min", 900, 60), Window("1 h", 3600, 60), Window("24 h", 86400, 600))
}
DEFAULT_WINDOW = "1 h"


@dataclass(frozen=True, slots=True)
class Headline:
    """The window's totals (latencies in ms; None when there is no request to measure)."""

    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    ttft_p50_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # priced rows only (an unpriced target adds nothing); cache checks included
    cacheable: int = 0  # requests on routes with a cache
    cache_hits: int = 0  # exact + semantic
    semantic_hits: int = 0
    saved_usd: float = 0.0
    p99_ms: float | None = None
    ttft_p95_ms: float | None = None
    ttft_p99_ms: float | None = None
    upstream_failed: int = 0  # requests with a failed upstream attempt (sql.UPSTREAM_FAILED_SQL)
    rescued: int = 0  # ... that still ended ok (a retry or fallback hid the failure)
    fell_back: int = 0  # requests that tried more than one target
    retried: int = 0  # requests that repeated a target
    checks: int = 0  # the gateway's checks of sampled semantic hits (rows, not requests: sql.CHECK_SQL)
    check_cost_usd: float = 0.0  # ... their cost, within cost_usd

    @property
    def rescue_rate(self) -> float:
        return self.rescued / self.upstream_failed if self.upstream_failed else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def hit_rate(self) -> float:
        return self.cache_hits / self.cacheable if self.cacheable else 0.0


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the overview page shows for one filter, as of ``as_of``.

    ``series``: one row per bucket (``t``, naive UTC bucket start), with ``requests_per_min``,
    ``p50_ms``, ``p95_ms``, ``prompt_tokens_per_min``, ``completion_tokens_per_min`` and one
    ``errors_per_min`` column per outcome in :data:`ERROR_OUTCOMES`. ``recent``: the newest
    requests, newest first, columns :data:`RECENT_COLUMNS` (only those of ``outcome`` when
    asked). ``routes``: the routes seen in the window.
    """

    window: Window
    route: str | None
    as_of: datetime
    headline: Headline
    series: pd.DataFrame
    recent: pd.DataFrame
    routes: tuple[str, ...] = field(default=())
    errors_by_reason: pd.DataFrame | None = None  # outcome, error_type, requests
    errors_by_target: pd.DataFrame | None = None  # provider, target, attempts, failed, failure_rate


# requests, outcomes, latency and cache over client requests; tokens and cost over every row
# (a cache check is spend, not a request: sql.CLIENT_SQL)
_C = CLIENT_SQL
_HEADLINE_SQL = f"""
SELECT count(*) FILTER (WHERE {_C}), count(*) FILTER (WHERE {ERROR_SQL} AND {_C}),
       quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FILTER (WHERE {_C}),
       quantile_cont(ttft_ms, [0.5, 0.95, 0.99]) FILTER (WHERE {_C}),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(cost_usd), 0), count(cache) FILTER (WHERE {_C}),
       count(*) FILTER (WHERE {HIT_SQL} AND {_C}), count(*) FILTER (WHERE cache = 'semantic-hit' AND {_C}),
       coalesce(sum(saved_usd) FILTER (WHERE {_C}), 0), count(*) FILTER (WHERE {RETRIED_SQL} AND {_C}),
       count(*) FILTER (WHERE {CHECK_SQL}), coalesce(sum(cost_usd) FILTER (WHERE {CHECK_SQL}), 0),
       list_min(max(ts, {{limit}}) FILTER (WHERE {_C} AND ($outcome IS NULL OR outcome = $outcome)))
FROM requests WHERE {{where}}
"""

# one pass over the (costly to decode) attempts lists: the headline's upstream failures,
# rescues and fallbacks, and every attempt by target
_ATTEMPTS_SQL = f"""
WITH a AS MATERIALIZED (
    SELECT * FROM {client_rows("outcome, retries, attempts")} AS c WHERE attempt_count > 0
), h AS (
    SELECT count(*) FILTER (WHERE {UPSTREAM_FAILED_SQL}) AS failed, count(*) FILTER (WHERE {RESCUED_SQL}) AS rescued,
           count(*) FILTER (WHERE {FELL_BACK_SQL}) AS fell_back
    FROM a
), t AS (
    SELECT x.target AS target, count(*) AS attempts, count(*) FILTER (WHERE x.error IS NOT NULL) AS failed
    FROM (SELECT unnest(attempts) AS x FROM a) GROUP BY 1
)
SELECT h.failed AS requests_failed, h.rescued, h.fell_back, split_part(t.target, '/', 1) AS provider, t.target,
       t.attempts, t.failed, t.failed / t.attempts AS failure_rate
FROM h LEFT JOIN t ON true
ORDER BY t.failed DESC, t.target
"""

# one list quantile per bucket, not one per percentile: one sort of a bucket's latencies, not two
# (-0.05 CPU s over 1M rows)
_SERIES_SQL = """
WITH agg AS (
    SELECT {bucket} AS i, count(*) FILTER (WHERE {client}) AS n,
           quantile_cont(latency_ms, [0.5, 0.95]) FILTER (WHERE {client}) AS lat,
           coalesce(sum(prompt_tokens), 0) AS pt, coalesce(sum(completion_tokens), 0) AS ct,
           {error_columns}
    FROM requests WHERE {where} AND ts >= to_timestamp($start) GROUP BY i
)
SELECT {bucket_time} AS t,
       coalesce(n, 0) / $minutes AS requests_per_min, lat[1] AS p50_ms, lat[2] AS p95_ms,
       coalesce(pt, 0) / $minutes AS prompt_tokens_per_min,
       coalesce(ct, 0) / $minutes AS completion_tokens_per_min,
       {error_rates}
FROM (SELECT range AS i FROM range($n)) b LEFT JOIN agg USING (i)
ORDER BY b.i
"""

# the newest rows: first the cutoff (the headline's last column: the oldest of the newest
# $limit timestamps, a top-n aggregate in its scan — a query of its own, ORDER BY ts DESC LIMIT,
# cost ~0.15 CPU s more over 1M rows), then only the rows past it (a constant, so DuckDB skips
# every Parquet row group older than it)
_RECENT_SQL = f"""
SELECT {", ".join(RECENT_COLUMNS)}
FROM requests WHERE {{where}} AND {_C} AND ($outcome IS NULL OR outcome = $outcome) AND ts >= $cutoff
ORDER BY ts DESC
LIMIT $limit
"""

_ROUTES_SQL = "SELECT DISTINCT route FROM requests WHERE {where} AND route IS NOT NULL ORDER BY route"

_ERRORS_BY_REASON_SQL = f"""
SELECT outcome, coalesce(error_type, '') AS error_type, count(*) AS requests,
       any_value(error_message) AS example
FROM requests WHERE {{where}} AND {ERROR_SQL} AND {_C}
GROUP BY ALL ORDER BY requests DESC, outcome, error_type
"""


def _series_sql(where: str, start: float, width: int) -> str:
    cols = ",\n           ".join(f"count(*) FILTER (WHERE outcome = '{o}' AND {_C}) AS e_{o}" for o in ERROR_OUTCOMES)
    rates = ", ".join(f"coalesce(e_{o}, 0) / $minutes AS errors_per_min_{o}" for o in ERROR_OUTCOMES)
    return _SERIES_SQL.format(
        error_columns=cols, error_rates=rates, where=where, bucket=bucket_sql(start, width), client=_C,
        bucket_time=bucket_time_sql(start, width, "b.i"),
    )  # fmt: skip


def series_buckets(filters: Filters, now: float) -> tuple[float, int, int]:
    """(start, width, count) of the chart buckets: whole buckets ending with the one holding
    the window's end, reaching back over the window (presets keep :data:`WINDOWS`' widths)."""
    since, until = filters.bounds(now)
    preset = WINDOWS.get(filters.window) if filters.since is None else None
    width = preset.bucket_s if preset is not None else filters.bucket_s(now)
    n = max(1, math.ceil((until - since) / width))
    start = (math.floor(until / width) + 1) * width - n * width
    return start, width, n


class OverviewStore:
    """Cached answers to "how is the traffic doing?" over a window of the request log.

    Thread-safe: every Panel session may call :meth:`overview` at once; one query runs at a
    time (DuckDB releases the GIL while it works, on one thread so it leaves the proxy's core
    alone).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        ttl_s: float = 2.0,
        recent_limit: int = 100,
        clock: Callable[[], float] = time.time,
        queries: LogQueries | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.recent_limit = recent_limit
        self.queries = queries or LogQueries(data_dir, ttl_s=ttl_s, threads=1, clock=clock)

    @property
    def clock(self) -> Callable[[], float]:
        return self.queries.clock

    def overview(
        self,
        window: str = DEFAULT_WINDOW,
        route: str | None = None,
        filters: Filters | None = None,
        outcome: str | None = None,
    ) -> Overview:
        """The page's data for ``filters`` (else ``window``, a key of :data:`WINDOWS`, and
        ``route``); the recent requests only of ``outcome`` when given."""
        if filters is None:
            WINDOWS[window]  # noqa: B018 -- an unknown window is a KeyError, as before
            filters = Filters(window=window, route=route)
        return self.queries.answer(
            ("overview", filters, outcome), lambda con, now: self._query(con, filters, outcome, now), filters
        )

    def close(self) -> None:
        self.queries.close()

    def _query(self, con: Any, filters: Filters, outcome: str | None, now: float) -> Overview:
        where, params = filters.where(now)
        limit = int(self.recent_limit)
        row = con.execute(_HEADLINE_SQL.format(where=where, limit=limit), {**params, "outcome": outcome}).fetchone()
        assert row is not None
        lat, ttft = row[2] or [None] * 3, row[3] or [None] * 3
        headline = Headline(
            requests=int(row[0]), errors=int(row[1]), p50_ms=lat[0], p95_ms=lat[1], p99_ms=lat[2],
            ttft_p50_ms=ttft[0], ttft_p95_ms=ttft[1], ttft_p99_ms=ttft[2], prompt_tokens=int(row[4]),
            completion_tokens=int(row[5]), cost_usd=float(row[6]), cacheable=int(row[7]), cache_hits=int(row[8]),
            semantic_hits=int(row[9]), saved_usd=float(row[10]), retried=int(row[11]), checks=int(row[12]),
            check_cost_usd=float(row[13]),
        )  # fmt: skip
        attempts = con.execute(_ATTEMPTS_SQL.format(where=where), params).df()
        if len(attempts):
            first = attempts.iloc[0]
            headline = replace(
                headline, upstream_failed=int(first["requests_failed"] or 0), rescued=int(first["rescued"] or 0),
                fell_back=int(first["fell_back"] or 0),
            )  # fmt: skip
        by_target = attempts.dropna(subset=["target"])[["provider", "target", "attempts", "failed", "failure_rate"]]
        start, width, n = series_buckets(filters, now)
        series = con.execute(
            _series_sql(where, start, width), {**params, "start": start, "n": n, "minutes": width / 60}
        ).df()
        recent = self._recent(con, where, {**params, "outcome": outcome, "limit": limit}, row[14])
        routes = tuple(r[0] for r in con.execute(_ROUTES_SQL.format(where=where), params).fetchall())
        by_reason = con.execute(_ERRORS_BY_REASON_SQL.format(where=where), params).df()
        since, _ = filters.bounds(now)
        win = WINDOWS.get(filters.window) if filters.since is None else None
        win = win or Window(filters.label(now), int(now - since), width)
        as_of = datetime.fromtimestamp(now, UTC)
        return Overview(win, filters.route, as_of, headline, series, recent, routes, by_reason, by_target)

    @staticmethod
    def _recent(con: Any, where: str, params: dict[str, Any], cutoff: Any) -> pd.DataFrame:
        if cutoff is None:
            cutoff = datetime.fromtimestamp(params["until"] + 1, UTC)  # nothing: an empty frame of the right shape
        return con.execute(_RECENT_SQL.format(where=where), {**params, "cutoff": cutoff}).df()


__all__ = [
    "DEFAULT_WINDOW", "ERROR_OUTCOMES", "WINDOWS", "Headline", "Overview", "OverviewStore", "Window", "series_buckets",
]  # fmt: skip
