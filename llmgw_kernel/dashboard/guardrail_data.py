"""The guardrails page's data: verdicts by stage, check, rule, type and action, from the
log's ``guardrails`` column (one struct per verdict: the findings' count and top
confidence, never the value), over time by action, and the newest requests a check fired on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .sql import CLIENT_SQL, bucket_sql, bucket_time_sql

if TYPE_CHECKING:
    import pandas as pd

    from .context import Context


@dataclass(frozen=True, slots=True)
class GuardrailData:
    requests: int  # in the window
    fired: int  # requests with at least one verdict
    blocked: int  # requests with a verdict whose action is block
    verdicts: pd.DataFrame  # stage, name, rule, type, action, requests, findings, max_score
    series: pd.DataFrame  # t, group (action), requests
    recent: pd.DataFrame
    buckets: tuple[float, int, int] = (0.0, 60, 0)  # the series' first bucket start (epoch s), width (s), count


_TOTALS_SQL = f"""
SELECT count(*), count(*) FILTER (WHERE len(guardrails) > 0),
       count(*) FILTER (WHERE list_contains(list_transform(guardrails, lambda g: g.action), 'block'))
FROM requests WHERE {{where}} AND {CLIENT_SQL}
"""

_VERDICTS_SQL = """
SELECT g.stage AS stage, g.name AS name, coalesce(g.rule, '') AS rule, g.type AS type, g.action AS action,
       count(*) AS requests,
       coalesce(sum(g.count), 0) AS findings, max(g.score) AS max_score
FROM (SELECT unnest(guardrails) AS g FROM requests WHERE {where} AND len(guardrails) > 0)
GROUP BY ALL ORDER BY requests DESC, stage, name, rule
"""

_SERIES_SQL = """
SELECT {bucket_time} AS t, action AS "group", count(DISTINCT request_id) AS requests FROM (
    SELECT {bucket} AS i, request_id, unnest(list_transform(guardrails, lambda g: g.action)) AS action
    FROM requests WHERE {where} AND len(guardrails) > 0
) GROUP BY ALL ORDER BY 1, 2
"""

_RECENT_SQL = """
SELECT ts, request_id, route, team, status, outcome,
       array_to_string(list_transform(guardrails, lambda g: g.stage || ':' || g.type || '/' || g.action
                                       || coalesce(' ' || g.rule, '')), ', ') AS verdicts
FROM requests WHERE {where} AND len(guardrails) > 0 ORDER BY ts DESC LIMIT $limit
"""


def guardrails(ctx: Context, filters: Filters, limit: int = 50) -> GuardrailData:
    def compute(con: Any, now: float) -> GuardrailData:
        where, params = filters.where(now)
        n, fired, blocked = con.execute(_TOTALS_SQL.format(where=where), params).fetchone()
        verdicts = con.execute(_VERDICTS_SQL.format(where=where), params).df()
        buckets = filters.buckets(now)
        start, width, _ = buckets
        series = con.execute(
            _SERIES_SQL.format(where=where, bucket=bucket_sql(start, width), bucket_time=bucket_time_sql(start, width)),
            params,
        ).df()  # fmt: skip
        recent = con.execute(_RECENT_SQL.format(where=where), {**params, "limit": limit}).df()
        return GuardrailData(int(n), int(fired), int(blocked), verdicts, series, recent, buckets)

    return ctx.queries.answer(("guardrails", filters, limit), compute, filters)


__all__ = ["GuardrailData", "guardrails"]
