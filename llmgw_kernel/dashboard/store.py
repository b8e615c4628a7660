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

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .queries import LogQueries
from .rollups import (
    ATTEMPTS_SQL,
    MINUTE_S,
    ROLLUP_SQL,
    Builder,
    Plan,
    Rollups,
    arrow,
    rollup_source,
    window_plan,
    with_stored,
)  # fmt: skip
from .sql import CLIENT_SQL, ERROR_SQL, bucket_sql, bucket_time_sql

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa  # type: ignore[import-untyped]

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
    upstream_failed: int = 0  # requests with a failed upstream attempt made (sql.UPSTREAM_FAILED_SQL)
    rescued: int = 0  # ... that still ended ok (a retry or fallback hid the failure)
    fell_back: int = 0  # requests served by a target other than the first planned (sql.FELL_BACK_SQL)
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


# The additive figures come from rows of rollups.ROLLUP_SQL / ATTEMPTS_SQL (per minute, route, kind
# and outcome): the sealed segments' stored entries for the window's whole minutes, and the same SQL
# over the rows scanned (rollups.Plan). Counts, latency and cache are over client requests; tokens and
# cost over every row (a cache check is spend, not a request: sql.CLIENT_SQL).
_C = CLIENT_SQL
_NC = "NOT is_check"
_HEADLINE_SQL = f"""
SELECT coalesce(sum(n) FILTER (WHERE {_NC}), 0), coalesce(sum(n) FILTER (WHERE {ERROR_SQL} AND {_NC}), 0),
       coalesce(sum(pt), 0), coalesce(sum(ct), 0), coalesce(sum(cost), 0),
       coalesce(sum(cacheable) FILTER (WHERE {_NC}), 0), coalesce(sum(hits) FILTER (WHERE {_NC}), 0),
       coalesce(sum(semantic_hits) FILTER (WHERE {_NC}), 0), coalesce(sum(saved) FILTER (WHERE {_NC}), 0),
       coalesce(sum(retried) FILTER (WHERE {_NC}), 0), coalesce(sum(n) FILTER (WHERE is_check), 0),
       coalesce(sum(cost) FILTER (WHERE is_check), 0), coalesce(sum(failed) FILTER (WHERE {_NC}), 0),
       -- rescued: the upstream failures that still ended ok (sql.RESCUED_SQL, per outcome group)
       coalesce(sum(failed) FILTER (WHERE {_NC} AND outcome = 'ok'), 0),
       coalesce(sum(fell_back) FILTER (WHERE {_NC}), 0)
FROM llmgw_rows
"""

# what does not add up, scanned once: the window's percentiles (the row with i NULL) and each chart
# bucket's p50/p95 (one list quantile per bucket: one sort of a bucket's latencies, not two), over
# the client requests' three columns held once (MATERIALIZED: one read of the Parquet columns, not
# one per aggregate; -0.04..0.1 CPU s over 1M rows, with the recent rows' cutoff out of this scan)
_LATENCY_SQL = f"""
WITH x AS MATERIALIZED (SELECT {{bucket}} AS i, latency_ms, ttft_ms FROM requests WHERE {{where}} AND {_C})
SELECT CAST(NULL AS BIGINT) AS i, quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS lat,
       quantile_cont(ttft_ms, [0.5, 0.95, 0.99]) AS ttft FROM x
UNION ALL
SELECT i, quantile_cont(latency_ms, [0.5, 0.95]), NULL FROM x WHERE i >= 0 GROUP BY i
"""

_TARGETS_SQL = """
SELECT split_part(target, '/', 1) AS provider, target, CAST(sum(attempts) AS BIGINT) AS attempts,
       CAST(sum(failed) AS BIGINT) AS failed, sum(failed) / sum(attempts) AS failure_rate
FROM llmgw_attempts WHERE target IS NOT NULL
GROUP BY target ORDER BY failed DESC, target
"""

_SERIES_SQL = f"""
WITH agg AS (
    SELECT CAST(floor((m * {MINUTE_S} - $start) / $width) AS BIGINT) AS i, sum(n) FILTER (WHERE {_NC}) AS n,
           sum(pt) AS pt, sum(ct) AS ct,
           {{error_columns}}
    FROM llmgw_rows WHERE m * {MINUTE_S} >= $start GROUP BY i
)
SELECT {{bucket_time}} AS t,
       coalesce(n, 0) / $minutes AS requests_per_min, lat[1] AS p50_ms, lat[2] AS p95_ms,
       coalesce(pt, 0) / $minutes AS prompt_tokens_per_min,
       coalesce(ct, 0) / $minutes AS completion_tokens_per_min,
       {{error_rates}}
FROM (SELECT range AS i FROM range($n)) b LEFT JOIN agg USING (i) LEFT JOIN llmgw_latency USING (i)
ORDER BY b.i
"""

# the newest rows: only those past the cutoff (a constant, so DuckDB skips every Parquet row group
# older than it; over the whole window, ORDER BY ts DESC LIMIT costs ~0.15 CPU s more over 1M rows):
# the window's last minute first, then back RECENT_WIDEN times as far, until enough rows or the window
_RECENT_SQL = f"""
SELECT {", ".join(RECENT_COLUMNS)}
FROM requests WHERE {{where}} AND {_C} AND ($outcome IS NULL OR outcome = $outcome) AND ts >= to_timestamp($cutoff)
ORDER BY ts DESC
LIMIT $limit
"""

_ROUTES_SQL = "SELECT DISTINCT route FROM llmgw_rows WHERE route IS NOT NULL ORDER BY route"

_ERRORS_BY_REASON_SQL = f"""
SELECT outcome, coalesce(error_type, '') AS error_type, CAST(sum(n) AS BIGINT) AS requests, min(example) AS example
FROM llmgw_rows WHERE {ERROR_SQL} AND {_NC}
GROUP BY ALL ORDER BY requests DESC, outcome, error_type
"""


def _series_sql(start: float, width: int) -> str:
    cols = ",\n           ".join(f"sum(n) FILTER (WHERE outcome = '{o}' AND {_NC}) AS e_{o}" for o in ERROR_OUTCOMES)
    rates = ", ".join(f"coalesce(e_{o}, 0) / $minutes AS errors_per_min_{o}" for o in ERROR_OUTCOMES)
    return _SERIES_SQL.format(error_columns=cols, error_rates=rates, bucket_time=bucket_time_sql(start, width, "b.i"))


def series_buckets(filters: Filters, now: float) -> tuple[float, int, int]:
    """(start, width, count) of the chart buckets: whole buckets ending with the one holding
    the window's end, reaching back over the window (presets keep :data:`WINDOWS`' widths)."""
    since, until = filters.bounds(now)
    preset = WINDOWS.get(filters.window) if filters.since is None else None
    width = preset.bucket_s if preset is not None else filters.bucket_s(now)
    n = max(1, math.ceil((until - since) / width))
    start = (math.floor(until / width) + 1) * width - n * width
    return start, width, n


#: the recent rows are looked for in the window's last RECENT_FIRST_S, then back RECENT_WIDEN times as far
RECENT_FIRST_S, RECENT_WIDEN = 60.0, 16.0


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
        build_rollups: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.recent_limit = recent_limit
        self.queries = queries or LogQueries(data_dir, ttl_s=ttl_s, threads=1, clock=clock)
        self.rollups = Rollups(data_dir)
        # the dashboard app's store rolls up the sealed segments in the background, after its first answer
        self._builder = Builder(self.rollups) if build_rollups else None
        self.last_plan: Plan | None = None  # how the last query read its window (rollups.Plan), for tests

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
        answer = self.queries.answer(
            ("overview", filters, outcome), lambda con, now: self._query(con, filters, outcome, now), filters
        )
        self.start_rollups()
        return answer

    def start_rollups(self) -> None:
        """Start rolling up the sealed segments in the background (the dashboard app's store:
        after a page's first answer, so a cold process answers it by scanning first)."""
        if self._builder is not None:
            self._builder.start()

    def window_plan(self, filters: Filters, now: float) -> Plan | None:
        """How a query reads ``filters``' window: :func:`.rollups.window_plan`."""
        return window_plan(self.rollups, filters, now)

    def close(self) -> None:
        self.stop()
        self.queries.close()

    def stop(self) -> None:
        """Stop rolling up segments in the background (the queries stay open)."""
        if self._builder is not None:
            self._builder.stop()

    def _query(self, con: Any, filters: Filters, outcome: str | None, now: float) -> Overview:
        where, params = filters.where(now)
        since, until = filters.bounds(now)
        limit = int(self.recent_limit)
        start, width, n = series_buckets(filters, now)
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        rows, attempts, plan = self._additive(con, filters, where, params, now)
        # for tests; without the entries' latency streams (they hold every entry's bytes, ~13 MB at 1M rows)
        self.last_plan = dataclasses.replace(plan, latency_blobs=()) if plan is not None else None
        tables = {"llmgw_rows": rows, "llmgw_attempts": attempts}
        pct = arrow(con, _LATENCY_SQL.format(where=where, bucket=bucket_sql(start, width)), params)
        overall = pct.filter(pc.is_null(pct.column("i"))).to_pylist()
        tables["llmgw_latency"] = pct.filter(pc.is_valid(pct.column("i"))).select(["i", "lat"])
        for name, table in tables.items():
            con.register(name, table)
        try:
            row = con.execute(_HEADLINE_SQL).fetchall()[0]
            lat, ttft = overall[0]["lat"] or [None] * 3, overall[0]["ttft"] or [None] * 3
            headline = Headline(
                requests=int(row[0]), errors=int(row[1]), p50_ms=lat[0], p95_ms=lat[1], p99_ms=lat[2],
                ttft_p50_ms=ttft[0], ttft_p95_ms=ttft[1], ttft_p99_ms=ttft[2], prompt_tokens=int(row[2]),
                completion_tokens=int(row[3]), cost_usd=float(row[4]), cacheable=int(row[5]), cache_hits=int(row[6]),
                semantic_hits=int(row[7]), saved_usd=float(row[8]), retried=int(row[9]), checks=int(row[10]),
                check_cost_usd=float(row[11]), upstream_failed=int(row[12]), rescued=int(row[13]),
                fell_back=int(row[14]),
            )  # fmt: skip
            by_target = con.execute(_TARGETS_SQL).df()
            series = con.execute(
                _series_sql(start, width), {"start": start, "width": width, "n": n, "minutes": width / 60}
            ).df()
            routes = tuple(r[0] for r in con.execute(_ROUTES_SQL).fetchall())
            by_reason = con.execute(_ERRORS_BY_REASON_SQL).df()
        finally:
            for name in tables:
                con.unregister(name)
        recent = self._recent(con, where, {**params, "outcome": outcome, "limit": limit})
        win = WINDOWS.get(filters.window) if filters.since is None else None
        win = win or Window(filters.label(now), int(now - since), width)
        as_of = datetime.fromtimestamp(now, UTC)
        return Overview(win, filters.route, as_of, headline, series, recent, routes, by_reason, by_target)

    def _additive(
        self, con: Any, filters: Filters, where: str, params: dict[str, Any], now: float
    ) -> tuple[pa.Table, pa.Table, Plan | None]:
        """The rows of rollups.ROLLUP_SQL and ATTEMPTS_SQL over the window: the stored entries'
        whole minutes and the scanned rest (every row scanned when a filter other than the route
        is set: the entries are per route)."""
        plan = self.window_plan(filters, now)
        relation = plan.scan if plan is not None else "requests"
        rows = arrow(con, ROLLUP_SQL.format(source=rollup_source(relation, where)), params)
        attempts = arrow(con, ATTEMPTS_SQL.format(relation=relation, where=where), params)
        if plan is not None:
            rows, attempts = with_stored(rows, plan.rollups), with_stored(attempts, plan.attempts)
        return rows, attempts, plan

    @staticmethod
    def _recent(con: Any, where: str, params: dict[str, Any]) -> pd.DataFrame:
        """The newest ``$limit`` rows of the window: those of its last minute, else of the last
        16 minutes, ... (each a cheap read of the newest row groups), else of the whole window."""
        since, until, back = params["since"], params["until"], RECENT_FIRST_S
        while True:
            cutoff = max(since, until - back)
            rows = con.execute(_RECENT_SQL.format(where=where), {**params, "cutoff": cutoff}).df()
            if len(rows) >= params["limit"] or cutoff <= since:
                return rows
            back *= RECENT_WIDEN


__all__ = [
    "DEFAULT_WINDOW", "ERROR_OUTCOMES", "WINDOWS", "Headline", "Overview", "OverviewStore", "Window", "series_buckets",
]  # fmt: skip
