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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..log.reader import open_log

if TYPE_CHECKING:
    import pandas as pd

ERROR_OUTCOMES: tuple[str, ...] = (
    "client_error", "limited", "upstream_error", "timeout", "no_target", "abandoned", "error",
)  # fmt: skip
RECENT_COLUMNS: tuple[str, ...] = (
    "ts", "request_id", "route", "target", "status", "outcome", "cache", "latency_ms", "ttft_ms",
    "prompt_tokens", "completion_tokens", "cost_usd",
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
    cost_usd: float = 0.0  # priced requests only (an unpriced target adds nothing)
    cacheable: int = 0  # requests on routes with a cache
    cache_hits: int = 0  # exact + semantic
    semantic_hits: int = 0
    saved_usd: float = 0.0

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
    requests, newest first, columns :data:`RECENT_COLUMNS`.
    """

    window: Window
    route: str | None
    as_of: datetime
    headline: Headline
    series: pd.DataFrame
    recent: pd.DataFrame
    routes: tuple[str, ...] = field(default=())


_HEADLINE_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE outcome IS DISTINCT FROM 'ok'),
       quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95),
       quantile_cont(ttft_ms, 0.5),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(cost_usd), 0), count(cache),
       count(*) FILTER (WHERE cache IN ('hit', 'semantic-hit')), count(*) FILTER (WHERE cache = 'semantic-hit'),
       coalesce(sum(saved_usd), 0)
FROM requests
WHERE ts >= to_timestamp($since) AND ts <= to_timestamp($now) AND ($route IS NULL OR route = $route)
"""

_SERIES_SQL = """
WITH rows AS (
    SELECT CAST(floor((epoch(ts) - $start) / $bucket) AS BIGINT) AS i, *
    FROM requests
    WHERE ts >= to_timestamp($start) AND ts < to_timestamp($start + $n * $bucket)
      AND ($route IS NULL OR route = $route)
), agg AS (
    SELECT i, count(*) AS n,
           quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.95) AS p95_ms,
           coalesce(sum(prompt_tokens), 0) AS pt, coalesce(sum(completion_tokens), 0) AS ct,
           {error_columns}
    FROM rows GROUP BY i
)
SELECT make_timestamp(CAST(($start + b.i * $bucket) * 1000000 AS BIGINT)) AS t,
       coalesce(n, 0) / $minutes AS requests_per_min, p50_ms, p95_ms,
       coalesce(pt, 0) / $minutes AS prompt_tokens_per_min,
       coalesce(ct, 0) / $minutes AS completion_tokens_per_min,
       {error_rates}
FROM (SELECT range AS i FROM range($n)) b LEFT JOIN agg USING (i)
ORDER BY b.i
"""

_RECENT_SQL = f"""
SELECT {", ".join(RECENT_COLUMNS)}
FROM requests
WHERE ts >= to_timestamp($since) AND ts <= to_timestamp($now) AND ($route IS NULL OR route = $route)
ORDER BY ts DESC
LIMIT $limit
"""

_ROUTES_SQL = """
SELECT DISTINCT route FROM requests
WHERE ts >= to_timestamp($since) AND route IS NOT NULL ORDER BY route
"""


def _series_sql() -> str:
    cols = ",\n           ".join(f"count(*) FILTER (WHERE outcome = '{o}') AS e_{o}" for o in ERROR_OUTCOMES)
    rates = ", ".join(f"coalesce(e_{o}, 0) / $minutes AS errors_per_min_{o}" for o in ERROR_OUTCOMES)
    return _SERIES_SQL.format(error_columns=cols, error_rates=rates)


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
    ) -> None:
        import duckdb

        self.data_dir = data_dir
        self.ttl_s = ttl_s
        self.recent_limit = recent_limit
        self.clock = clock
        self._con = open_log(data_dir, duckdb.connect(config={"threads": 1, "memory_limit": "512MB"}))
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], tuple[float, Overview]] = {}
        self._series_sql = _series_sql()

    def overview(self, window: str = DEFAULT_WINDOW, route: str | None = None) -> Overview:
        """The page's data for ``window`` (a key of :data:`WINDOWS`), optionally one route."""
        win = WINDOWS[window]
        key = (window, route)
        with self._lock:
            hit = self._cache.get(key)
            now = self.clock()
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
            result = self._query(win, route, now)
            self._cache[key] = (now, result)
            return result

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _query(self, win: Window, route: str | None, now: float) -> Overview:
        con = self._con
        since = now - win.seconds
        row = con.execute(_HEADLINE_SQL, {"since": since, "now": now, "route": route}).fetchone()
        assert row is not None
        headline = Headline(
            requests=int(row[0]), errors=int(row[1]), p50_ms=row[2], p95_ms=row[3],
            ttft_p50_ms=row[4], prompt_tokens=int(row[5]), completion_tokens=int(row[6]),
            cost_usd=float(row[7]), cacheable=int(row[8]), cache_hits=int(row[9]), semantic_hits=int(row[10]),
            saved_usd=float(row[11]),
        )  # fmt: skip
        n = win.seconds // win.bucket_s
        start = (math.floor(now / win.bucket_s) + 1) * win.bucket_s - n * win.bucket_s
        series = con.execute(
            self._series_sql,
            {"start": start, "bucket": win.bucket_s, "n": n, "minutes": win.bucket_s / 60, "route": route},
        ).df()
        recent = con.execute(_RECENT_SQL, {"since": since, "now": now, "route": route, "limit": self.recent_limit}).df()
        routes = tuple(r[0] for r in con.execute(_ROUTES_SQL, {"since": since}).fetchall())
        as_of = datetime.fromtimestamp(now, UTC)
        return Overview(win, route, as_of, headline, series, recent, routes)


__all__ = ["DEFAULT_WINDOW", "ERROR_OUTCOMES", "WINDOWS", "Headline", "Overview", "OverviewStore", "Window"]
