"""SQL fragments that define the dashboards' derived figures, each in one place.

A request's ``attempts`` list holds every upstream try in order (target, status, latency,
error). Its figures are read from the log's scalar columns that stand for the lists
(``attempt_count``, ``first_planned``, ``first_attempt_failed``: decoding a list costs ~10x a
scalar), in the rows of :func:`client_rows` — which derives them from the lists only for rows
written before the columns. From them:

- an *upstream failure*: a request with at least one failed attempt, whatever the client
  finally got (``UPSTREAM_FAILED_SQL``). Attempts are the calls made: a target skipped because
  its breaker is open (an entry ``error`` "skipped: ...") called no upstream, so it is neither
  an attempt nor a failure (``log.schema.SKIPPED``);
- a *fallback*: a request served by a target other than the first routing planned, whatever
  the reason — the first failed, or was skipped by its open breaker (``FELL_BACK_SQL``);
- a *rescue*: an upstream failure that still ended ``ok`` (``RESCUED_SQL``): the route's
  retries or fallbacks hid it from the client. A route whose first target fails 15% of the
  time but always falls back shows 0 errors and a 15% upstream failure rate, 100% rescued.
  Once that target's breaker opens, its requests go straight to the next target: fallbacks
  (the fallback rate stays), not upstream failures or rescues (the breakers show it open).

Rows written before 2026-12-06 hold scalars that counted skipped entries as attempts (a skip
first read as a failed first attempt): their upstream failures and rescues include requests
whose first target was skipped (docs/log.md).

Not every row is a client's request: the gateway's check of a sampled semantic hit is a row
of its own (``endpoint = 'cache.check'``, issue 17) whose cost is real spend, charged to the
hit's budgets. So every count, rate, latency and cache figure is over client requests
(``CLIENT_SQL``), and spend — ``cost_usd`` and the tokens it paid for — over every row, with
the checks' share of it shown where the cache's savings are (``CHECK_SQL``).
"""

from __future__ import annotations

from ..log.record import CHECK_ENDPOINT
from ..log.schema import LIST_SCALARS_SQL, SKIPPED_SQL

# Over the columns of client_rows() (attempt_count and first_attempt_failed count the attempts
# made, skipped targets passed over). A second attempt is only ever made after a failed one, so
# "some attempt failed" is "more than one attempt, or the only one failed".
UPSTREAM_FAILED_SQL = "(attempt_count > 1 OR first_attempt_failed)"
#: served (``target``) by a target other than the first planned: the first failed or was skipped
FELL_BACK_SQL = "coalesce(target <> first_planned, false)"
#: routing planned an order of targets (a request refused before routing has none)
PLANNED_SQL = "(first_planned IS NOT NULL)"
RETRIED_SQL = "(coalesce(retries, 0) > 0)"
RESCUED_SQL = f"({UPSTREAM_FAILED_SQL} AND outcome = 'ok')"
ERROR_SQL = "(outcome IS DISTINCT FROM 'ok')"
HIT_SQL = "(cache IN ('hit', 'semantic-hit'))"
#: an ``attempts`` entry (``x``) for a target that was skipped (its breaker open: ``error``
#: "skipped: circuit open ..."), not called — not an upstream attempt or failure
NOT_ATTEMPTED_SQL = SKIPPED_SQL
#: refusals by admission: budget_exceeded | rate_limited
REFUSED_SQL = "(admission IN ('budget_exceeded', 'rate_limited'))"
#: a client's request (every row but the gateway's own cache checks)
CLIENT_SQL = f"(endpoint IS DISTINCT FROM '{CHECK_ENDPOINT}')"
#: the gateway's check of a sampled semantic hit: spend, not a request
CHECK_SQL = f"(endpoint = '{CHECK_ENDPOINT}')"


def client_rows(columns: str) -> str:
    """A subquery: ``columns`` and the list scalars (``attempt_count``, ``first_planned``,
    ``first_attempt_failed``) of the client requests matching ``{where}`` (a placeholder left
    for the caller's ``str.format``, with its parameters): :func:`rows_with_list_scalars`."""
    return rows_with_list_scalars(columns, "requests", f"{{where}} AND {CLIENT_SQL}")


def rows_with_list_scalars(columns: str, relation: str, where: str) -> str:
    """A subquery: ``columns`` and the list scalars of the rows of ``relation`` matching ``where``.

    Rows written with the scalar columns give them as they are; rows written before them (NULL)
    derive them from the lists (``log.schema.LIST_SCALARS_SQL``). Two scans, not
    ``coalesce(attempt_count, len(attempts))``: DuckDB decodes every column a scan names, so only
    the second scan names the lists, and its ``attempt_count IS NULL`` filter skips, by their
    statistics, the row groups written with the columns — a log written since reads no list."""
    scalars = ", ".join(LIST_SCALARS_SQL)
    derived = ", ".join(f"{sql} AS {name}" for name, sql in LIST_SCALARS_SQL.items())
    rows = f"FROM {relation} WHERE {where} AND attempt_count"
    return f"(SELECT {columns}, {scalars} {rows} IS NOT NULL UNION ALL SELECT {columns}, {derived} {rows} IS NULL)"


def bucket_sql(start: float, width: int) -> str:
    """The bucket index of a row's ``ts`` (buckets of ``width`` s from ``start``)."""
    return f"CAST(floor((epoch(ts) - {float(start)!r}) / {int(width)}) AS BIGINT)"


def bucket_time_sql(start: float, width: int, index: str = "i") -> str:
    """The (naive UTC) start time of bucket ``index``."""
    return f"make_timestamp(CAST(({float(start)!r} + {index} * {int(width)}) * 1000000 AS BIGINT))"


__all__ = [
    "CHECK_ENDPOINT", "CHECK_SQL", "CLIENT_SQL", "ERROR_SQL", "FELL_BACK_SQL", "HIT_SQL", "NOT_ATTEMPTED_SQL",
    "PLANNED_SQL", "REFUSED_SQL", "RESCUED_SQL", "RETRIED_SQL", "UPSTREAM_FAILED_SQL", "bucket_sql", "bucket_time_sql",
    "client_rows", "rows_with_list_scalars",
]  # fmt: skip
