"""The cost page's data: spend by team / key / user / model / provider / route over time, cost
per 1k requests, the top spenders, and what the cache and routing saved.

Spend counts every priced row, the gateway's checks of sampled semantic hits included (they
are charged to the hit's key, team and user); request counts are client requests only
(:data:`.sql.CLIENT_SQL`), so cost per 1k requests is what a thousand requests cost, checks
and all.

*Routing savings* are an estimate: per route, what its requests would have cost had each
gone to the route's dearest target (that target's mean cost per priced request in the same
window), minus what they cost. A route with one target, or whose targets cost the same,
saves 0. *Cache savings* are the log's ``saved_usd`` (what each hit's source answer cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .sql import CHECK_SQL, CLIENT_SQL, bucket_sql, bucket_time_sql

if TYPE_CHECKING:
    import pandas as pd

    from .context import Context

#: group-by choice -> log column
GROUPS: dict[str, str] = {
    "team": "team", "key": "key_id", "user": "end_user", "model": "upstream_model", "provider": "provider",
    "route": "route",
}  # fmt: skip
TOP_SERIES = 6  # the chart shows the top groups; the rest is "(other)"


@dataclass(frozen=True, slots=True)
class CostData:
    requests: int  # client requests (sql.CLIENT_SQL)
    cost_usd: float  # every priced row: cache checks are spend too
    priced: int  # requests with a cost (cache hits count 0, unpriced targets are left out)
    cache_saved_usd: float
    routing_saved_usd: float
    top: pd.DataFrame  # group, requests, cost_usd, cost_per_1k_usd, share
    series: pd.DataFrame  # t, group, cost_usd (per bucket)
    bucket_s: int
    check_cost_usd: float = 0.0  # spent checking sampled semantic hits, within cost_usd
    buckets: tuple[float, int, int] = (0.0, 60, 0)  # the series' first bucket start (epoch s), width (s), count

    @property
    def cost_per_1k_usd(self) -> float:
        return 1000 * self.cost_usd / self.priced if self.priced else 0.0


_ROUTING_SAVED_SQL = f"""
WITH per_target AS (
    SELECT route, target, count(*) AS n, sum(cost_usd) AS cost, avg(cost_usd) AS mean_cost
    FROM requests WHERE {{where}} AND {CLIENT_SQL} AND cost_usd IS NOT NULL AND target IS NOT NULL
      AND cache IS DISTINCT FROM 'hit' AND cache IS DISTINCT FROM 'semantic-hit'
    GROUP BY ALL
)
SELECT coalesce(sum(dearest * n_route - cost_route), 0) FROM (
    SELECT route, max(mean_cost) AS dearest, sum(n) AS n_route, sum(cost) AS cost_route
    FROM per_target GROUP BY route
)
"""

# the top spenders and, over every group (window sums, before the LIMIT), the totals: one scan
# for both (the totals had a scan of their own: ~0.07 CPU s over 1M rows)
_TOP_SQL = f"""
SELECT "group", requests, cost_usd, cost_per_1k_usd,
       sum(requests) OVER () AS all_requests, sum(cost_usd) OVER () AS all_cost, sum(priced) OVER () AS all_priced,
       sum(saved_usd) OVER () AS all_saved, sum(check_cost_usd) OVER () AS all_checks
FROM (
    SELECT coalesce(CAST({{column}} AS VARCHAR), '(none)') AS "group", count(*) FILTER (WHERE {CLIENT_SQL}) AS requests,
           coalesce(sum(cost_usd), 0) AS cost_usd, count(cost_usd) FILTER (WHERE {CLIENT_SQL}) AS priced,
           CASE WHEN count(cost_usd) FILTER (WHERE {CLIENT_SQL}) > 0
                THEN 1000 * sum(cost_usd) / count(cost_usd) FILTER (WHERE {CLIENT_SQL}) END AS cost_per_1k_usd,
           coalesce(sum(saved_usd), 0) AS saved_usd,
           coalesce(sum(cost_usd) FILTER (WHERE {CHECK_SQL}), 0) AS check_cost_usd
    FROM requests WHERE {{where}}
    GROUP BY 1
)
ORDER BY cost_usd DESC, requests DESC, 1 LIMIT $limit
"""

_SERIES_SQL = """
WITH g AS (
    SELECT coalesce(CAST({column} AS VARCHAR), '(none)') AS grp, {bucket} AS i, sum(cost_usd) AS cost
    FROM requests WHERE {where} GROUP BY ALL
), top AS (SELECT grp FROM g GROUP BY grp ORDER BY sum(cost) DESC NULLS LAST, grp LIMIT {top})
SELECT {bucket_time} AS t, CASE WHEN grp IN (SELECT grp FROM top) THEN grp ELSE '(other)' END AS "group",
       coalesce(sum(cost), 0) AS cost_usd
FROM g GROUP BY ALL ORDER BY 1, 2
"""


def cost(ctx: Context, filters: Filters, group: str = "team", limit: int = 50) -> CostData:
    """Spend in the window, grouped by ``group`` (a key of :data:`GROUPS`)."""
    column = GROUPS[group]

    def compute(con: Any, now: float) -> CostData:
        where, params = filters.where(now)
        routing = con.execute(_ROUTING_SAVED_SQL.format(where=where), params).fetchone()[0]
        ranked = con.execute(_TOP_SQL.format(column=column, where=where), {**params, "limit": limit}).df()
        # the totals are on every row; no row in the window: every total is 0
        all_ = ["all_requests", "all_cost", "all_priced", "all_saved", "all_checks"]
        n, total, priced, saved, checks = ranked[all_].iloc[0] if len(ranked) else (0, 0.0, 0, 0.0, 0.0)
        top = ranked[["group", "requests", "cost_usd", "cost_per_1k_usd"]].copy()
        top["share"] = top["cost_usd"] / total if total else 0.0
        start, width, count = filters.buckets(now)
        series = con.execute(
            _SERIES_SQL.format(
                column=column, where=where, bucket=bucket_sql(start, width), top=TOP_SERIES,
                bucket_time=bucket_time_sql(start, width),
            ),
            params,
        ).df()  # fmt: skip
        return CostData(
            int(n), float(total), int(priced), float(saved), float(routing or 0.0), top, series, width, float(checks),
            (start, width, count),
        )  # fmt: skip

    return ctx.queries.answer(("cost", filters, group, limit), compute, filters)


__all__ = ["GROUPS", "CostData", "cost"]
