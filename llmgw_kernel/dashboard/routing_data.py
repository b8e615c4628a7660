"""The routing page's data: target shares per route, per-target error rates and latency,
each route's upstream failures and how many its retries and fallbacks rescued, and the
circuit breakers (live state: ``/health`` and ``/metrics``).

Shares count the first target routing planned (``plan[1]``, read as ``first_planned``: what
the weights chose) and the target that served; per-target figures count every upstream attempt
(``attempts``) of client requests (the gateway's own cache checks are no requests:
:data:`.sql.CLIENT_SQL`). Only the per-target figures decode the lists: the routes and shares
read their scalar columns (:func:`.sql.client_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .sql import CLIENT_SQL, ERROR_SQL, FELL_BACK_SQL, PLANNED_SQL, RESCUED_SQL, UPSTREAM_FAILED_SQL, client_rows

if TYPE_CHECKING:
    import pandas as pd

    from .context import Context


@dataclass(frozen=True, slots=True)
class RoutingData:
    live: bool
    routes: pd.DataFrame  # route, requests, errors, upstream_failed, rescued, fell_back + rates
    shares: pd.DataFrame  # route, target, planned_first, planned_share, served, served_share
    targets: pd.DataFrame  # target, attempts, failed, failure_rate, p50_ms, p95_ms
    breakers: pd.DataFrame  # route, target, state, opened, half_open, closed (transitions)


_ROUTES_SQL = f"""
SELECT route, count(*) AS requests, count(*) FILTER (WHERE {ERROR_SQL}) AS errors,
       count(*) FILTER (WHERE {UPSTREAM_FAILED_SQL}) AS upstream_failed,
       count(*) FILTER (WHERE {RESCUED_SQL}) AS rescued, count(*) FILTER (WHERE {FELL_BACK_SQL}) AS fell_back
FROM {client_rows("route, outcome, retries, target")} AS r
WHERE route IS NOT NULL AND ({PLANNED_SQL} OR target IS NOT NULL)
GROUP BY ALL ORDER BY requests DESC, route
"""

_SHARES_SQL = f"""
WITH r AS (SELECT route, first_planned AS first, target FROM {client_rows("route, target")} AS c WHERE {PLANNED_SQL}),
planned AS (SELECT route, first AS target, count(*) AS planned_first FROM r GROUP BY ALL),
served AS (SELECT route, target, count(*) AS served FROM r WHERE target IS NOT NULL GROUP BY ALL)
SELECT route, target, coalesce(planned_first, 0) AS planned_first,
       coalesce(planned_first, 0) / sum(coalesce(planned_first, 0)) OVER (PARTITION BY route) AS planned_share,
       coalesce(served, 0) AS served,
       coalesce(served, 0) / nullif(sum(coalesce(served, 0)) OVER (PARTITION BY route), 0) AS served_share
FROM planned FULL JOIN served USING (route, target)
ORDER BY route, planned_first DESC, target
"""

_TARGETS_SQL = f"""
SELECT x.target AS target, count(*) AS attempts, count(*) FILTER (WHERE x.error IS NOT NULL) AS failed,
       count(*) FILTER (WHERE x.error IS NOT NULL) / count(*) AS failure_rate,
       quantile_cont(x.latency_ms, [0.5, 0.95]) AS q
FROM (SELECT unnest(attempts) AS x FROM requests WHERE {{where}} AND {CLIENT_SQL} AND len(attempts) > 0)
GROUP BY 1 ORDER BY attempts DESC, target
"""


def routing(ctx: Context, filters: Filters) -> RoutingData:
    """The log's figures for ``filters`` (cached by filters alone), with the live breakers."""
    snap = ctx.live.snapshot()

    def compute(con: Any, now: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        where, params = filters.where(now)
        routes = con.execute(_ROUTES_SQL.format(where=where), params).df()
        n = routes["requests"].where(routes["requests"] > 0)
        routes["error_rate"] = routes["errors"] / n
        routes["upstream_failure_rate"] = routes["upstream_failed"] / n
        routes["rescue_rate"] = routes["rescued"] / routes["upstream_failed"].where(routes["upstream_failed"] > 0)
        routes["fallback_rate"] = routes["fell_back"] / n
        shares = con.execute(_SHARES_SQL.format(where=where), params).df()
        targets = con.execute(_TARGETS_SQL.format(where=where), params).df()
        qs = list(targets.pop("q"))
        targets["p50_ms"] = [q[0] if q is not None else None for q in qs]
        targets["p95_ms"] = [q[1] if q is not None else None for q in qs]
        return routes, shares, targets

    routes, shares, targets = ctx.queries.answer(("routing", filters), compute, filters)
    return RoutingData(snap is not None, routes, shares, targets, _breakers(snap))


def _breakers(snap: Any) -> pd.DataFrame:
    import pandas as pd

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if snap is not None:
        for (route, target), state in snap.circuits.items():
            rows.setdefault((route, target), {})["state"] = state
        for (route, target, to), count in snap.transitions.items():
            rows.setdefault((route, target), {})[f"to_{to.replace('-', '_')}"] = int(count)
    columns = ["route", "target", "state", "to_open", "to_half_open", "to_closed"]
    out = [{"route": r, "target": t, **v} for (r, t), v in sorted(rows.items())]
    return pd.DataFrame(out, columns=columns)


__all__ = ["RoutingData", "routing"]
