"""The routing page's data: target shares per route, per-target error rates and latency,
each route's upstream failures and how many its retries and fallbacks rescued, and the
circuit breakers (live state: ``/health`` and ``/metrics``).

Shares count the first target routing planned (``plan[1]``, read as ``first_planned``: what
the weights chose) and the target that served; per-target figures count every upstream attempt
(``attempts``) of client requests (the gateway's own cache checks are no requests:
:data:`.sql.CLIENT_SQL`). Only the per-target figures decode the lists: the routes and shares
read their scalar columns (:func:`.sql.rows_with_list_scalars`).

The routes and shares add up: both are sums over the rows of :data:`.rollups.ROUTING_SQL` (per
minute, route, first planned and served target, ok or not), which the sealed segments' stored
entries hold for a window's whole minutes (:mod:`.rollups`); only the rest is scanned, by the same
SQL (every row with a filter other than the route). The per-target latency percentiles do not add
up: the entries keep every attempt's latency (:data:`.rollups.LATENCY_SQL`), read for the whole
minutes instead of decoding the ``attempts`` lists again; only the rest decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .rollups import LATENCY_SQL, ROUTING_SQL, arrow, routing_source, with_stored
from .sql import PLANNED_SQL

if TYPE_CHECKING:
    import pandas as pd

    from .context import Context
    from .rollups import Plan


@dataclass(frozen=True, slots=True)
class RoutingData:
    live: bool
    routes: pd.DataFrame  # route, requests, errors, upstream_failed, rescued, fell_back + rates
    shares: pd.DataFrame  # route, target, planned_first, planned_share, served, served_share
    targets: pd.DataFrame  # target, attempts, failed, failure_rate, p50_ms, p95_ms
    breakers: pd.DataFrame  # route, target, state, opened, half_open, closed (transitions)


#: the rows of rollups.ROUTING_SQL over the window (stored and scanned), registered for the two below
_ROWS = "llmgw_routing"
# errors: sql.ERROR_SQL, rescued: sql.RESCUED_SQL, per ok-or-not group
_ROUTES_SQL = f"""
SELECT route, CAST(sum(n) AS BIGINT) AS requests,
       CAST(coalesce(sum(n) FILTER (WHERE NOT ok), 0) AS BIGINT) AS errors,
       CAST(sum(failed) AS BIGINT) AS upstream_failed,
       CAST(coalesce(sum(failed) FILTER (WHERE ok), 0) AS BIGINT) AS rescued,
       CAST(sum(fell_back) AS BIGINT) AS fell_back
FROM {_ROWS}
WHERE route IS NOT NULL AND ({PLANNED_SQL} OR target IS NOT NULL)
GROUP BY ALL ORDER BY requests DESC, route
"""

_SHARES_SQL = f"""
WITH r AS (SELECT route, first_planned AS first, target, n FROM {_ROWS} WHERE {PLANNED_SQL}),
planned AS (SELECT route, first AS target, CAST(sum(n) AS BIGINT) AS planned_first FROM r GROUP BY ALL),
served AS (SELECT route, target, CAST(sum(n) AS BIGINT) AS served FROM r WHERE target IS NOT NULL GROUP BY ALL)
SELECT route, target, coalesce(planned_first, 0) AS planned_first,
       coalesce(planned_first, 0) / sum(coalesce(planned_first, 0)) OVER (PARTITION BY route) AS planned_share,
       coalesce(served, 0) AS served,
       coalesce(served, 0) / nullif(sum(coalesce(served, 0)) OVER (PARTITION BY route), 0) AS served_share
FROM planned FULL JOIN served USING (route, target)
ORDER BY route, planned_first DESC, target
"""

#: every attempt's rows of rollups.LATENCY_SQL over the window (stored and scanned)
_LATENCY = "llmgw_attempt_latency"
_TARGETS_SQL = """
SELECT target, count(*) AS attempts, count(*) FILTER (WHERE att_failed) AS failed,
       count(*) FILTER (WHERE att_failed) / count(*) AS failure_rate, quantile_cont(latency_ms, [0.5, 0.95]) AS q
FROM {relation}
GROUP BY 1 ORDER BY attempts DESC, target
"""


def routing(ctx: Context, filters: Filters) -> RoutingData:
    """The log's figures for ``filters`` (cached by filters alone), with the live breakers."""
    snap = ctx.live.snapshot()

    def compute(con: Any, now: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        where, params = filters.where(now)
        plan = ctx.overview.window_plan(filters, now)
        routes, shares = routes_and_shares(con, plan, where, params)
        n = routes["requests"].where(routes["requests"] > 0)
        routes["error_rate"] = routes["errors"] / n
        routes["upstream_failure_rate"] = routes["upstream_failed"] / n
        routes["rescue_rate"] = routes["rescued"] / routes["upstream_failed"].where(routes["upstream_failed"] > 0)
        routes["fallback_rate"] = routes["fell_back"] / n
        targets = per_target(con, plan, where, params)
        qs = list(targets.pop("q"))
        targets["p50_ms"] = [q[0] if q is not None else None for q in qs]
        targets["p95_ms"] = [q[1] if q is not None else None for q in qs]
        return routes, shares, targets

    routes, shares, targets = ctx.queries.answer(("routing", filters), compute, filters)
    ctx.overview.start_rollups()
    return RoutingData(snap is not None, routes, shares, targets, _breakers(snap))


def routes_and_shares(
    con: Any, plan: Plan | None, where: str, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The routes' and target shares' frames: :data:`_ROUTES_SQL` and :data:`_SHARES_SQL` over the
    rows of ROUTING_SQL — the stored entries' whole minutes of ``plan`` and the scanned rest
    (every row matching ``where`` when ``plan`` is None)."""
    relation = plan.scan if plan is not None else "requests"
    rows = arrow(con, ROUTING_SQL.format(source=routing_source(relation, where)), params)
    if plan is not None:
        rows = with_stored(rows, plan.routing)
    con.register(_ROWS, rows)
    try:
        return con.execute(_ROUTES_SQL).df(), con.execute(_SHARES_SQL).df()
    finally:
        con.unregister(_ROWS)


def per_target(con: Any, plan: Plan | None, where: str, params: dict[str, Any]) -> pd.DataFrame:
    """Per attempted target: attempts, failed, failure rate and latency percentiles (``q``), over
    the rows of LATENCY_SQL: the stored entries' whole minutes of ``plan`` and the scanned rest —
    one scan straight into the aggregate when no entry has any (a log without entries, a filter)."""
    relation = plan.scan if plan is not None else "requests"
    scan = f"({LATENCY_SQL.format(relation=relation, where=where)})"
    import pyarrow as pa  # type: ignore[import-untyped]

    stored = plan.latency() if plan is not None else None
    if stored is None:
        return con.execute(_TARGETS_SQL.format(relation=scan), params).df()
    # the few scanned rows take the stored rows' types (dictionary-coded), not the other way round
    con.register(_LATENCY, pa.concat_tables([stored, arrow(con, scan, params).cast(stored.schema)]))
    try:
        return con.execute(_TARGETS_SQL.format(relation=_LATENCY)).df()
    finally:
        con.unregister(_LATENCY)


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


__all__ = ["RoutingData", "per_target", "routes_and_shares", "routing"]
