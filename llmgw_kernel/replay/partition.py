"""Partitions of a replay: groups of logged requests that a candidate policy decides
independently of each other, so each can be replayed on its own core or machine and the
results put together equal the single-process replay (docs/replay-distributed.md).

Two requests are **coupled** when one's decision can read state the other changed. Under a
candidate policy that is (and nothing else):

- **budgets and rate limits**: the same team, end user, key or route, for each scope the
  candidate (or a key's own settings, from the key history) limits. A scope whose limits all
  name their subject (``{scope: team, name: search}``) couples only those subjects. A
  *global* budget or rate limit couples every request: then there is one partition;
- **the replay's whole-window estimates** (what a request that did not run live as the
  candidate runs it costs and takes: per-target failure rates, per-route tokens and latency,
  hit latency): every request, unless the candidate is the policy that served every row (no
  estimate is read) or the partitions are given the whole window's estimates
  (``shared_estimates``; see :data:`ESTIMATES`);
- **the exact and semantic caches**: the same cache namespace (route + key and/or team, per
  the route's ``cache.namespace``, + the ``x-llmgw-cache-namespace`` header); the whole route
  when its store could evict an entry still visible to a lookup (eviction is FIFO per route:
  exact, more than ``max_entries`` requests within a TTL, see :func:`_busiest_ttl`;
  semantic, more than ``max_entries`` requests); on a semantic route, the same raw
  ``cache_key`` (a live exact hit borrows the embedding of the first earlier request with its
  key, whatever that one's namespace).

The coupling graph (requests and the values above) is split into connected components by
``scipy.sparse.csgraph`` over integer codes (the values are read and coded in DuckDB/Arrow,
with no Python object per request); components are packed into ``P`` partitions balanced by
row count, largest first. The rows before ``since`` the replay reads for its starting state
(the budget windows' spend, the last minute's admissions, answers cached within the longest
TTL) are partitioned with the window: each part starts from its own share of that state.

The result is a :class:`PartitionPlan`: one ``(request_id, partition)`` row per request of the
warm-up and the window, as an Arrow table. A worker registers its partition's ids in its DuckDB
connection (as a vectorised membership function) and passes :func:`predicate`'s ``where`` to
:func:`~llmgw_kernel.replay`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from .limits_stage import warmup_since

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa  # type: ignore[import-untyped]

    from ..keys.store import KeyHistory
    from ..policy.model import Policy

#: why a candidate's requests are all coupled today (docs/replay-distributed.md#estimates)
ESTIMATES = (
    "the replay estimates what a candidate's requests cost and how long they take from statistics of the rows it "
    "reads (per-target failure rates, per-route mean tokens and latency, hit latency); a partition would estimate "
    "from its own rows, so only a replay of the policy that served the window (no estimate) is split"
)
#: the DuckDB function a worker's partition is selected with (request_id -> in this partition)
IDS_FUNCTION = "llmgw_in_partition"
_LIMIT_SCOPES = ("key", "team", "user", "route")
_LIMIT_COLUMN = {"key": "key_id", "team": "team", "user": "end_user", "route": "coalesce(route, '')"}


@dataclass
class Coupling:
    """What couples requests under one candidate (see the module docstring)."""

    everything: str | None = None  # why every request is coupled (a global limit), else None
    scopes: dict[str, set[str] | None] = field(default_factory=dict)  # limited scope -> names (None: all)
    cache_routes: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # route -> (by key, by team)
    evicting_routes: set[str] = field(default_factory=set)
    semantic_routes: set[str] = field(default_factory=set)

    def describe(self) -> list[str]:
        """The couplings in words (what the plan reports)."""
        if self.everything:
            return [self.everything]
        out = [f"{s}: {'every value' if n is None else sorted(n)}" for s, n in sorted(self.scopes.items())]
        out += [f"cache namespace: {r}" for r in sorted(self.cache_routes)]
        out += [f"cache eviction (whole route): {r}" for r in sorted(self.evicting_routes)]
        out += [f"borrowed embeddings (raw cache_key): {r}" for r in sorted(self.semantic_routes)]
        return out


@dataclass
class PartitionPlan:
    """Which partition each request of the window (and its warm-up) belongs to."""

    table: pa.Table  # request_id: string, partition: int32
    partitions: int  # how many the rows were split into (<= requested)
    requested: int
    components: int
    rows: list[int]  # rows per partition
    coupling: Coupling
    notes: list[str] = field(default_factory=list)  # why fewer partitions than requested

    def ids(self, p: int) -> pa.Table:
        """The request ids of partition ``p`` (a one-column Arrow table)."""
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        return self.table.filter(pc.equal(self.table["partition"], p)).select(["request_id"])

    def describe(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "requested": self.requested,
            "components": self.components,
            "rows_per_partition": self.rows,
            "couplings": self.coupling.describe(),
            "notes": self.notes,
        }


def predicate(con: duckdb.DuckDBPyConnection, ids: pa.Table) -> str:
    """Register ``ids`` on ``con``; the ``where`` that selects those requests (for ``replay``).

    A filter, not a join: the replay reads its window's columns in separate scans of the same
    predicate and relies on each returning the rows in the same (scan) order, which a filter
    keeps and a semi-join against an id table does not (its hash join reorders rows)."""
    import contextlib

    import pyarrow.compute as pc  # type: ignore[import-untyped]

    wanted = ids["request_id"].combine_chunks()

    def member(request_id: Any) -> Any:  # DuckDB reads these hints: no names imported for typing only
        return pc.is_in(request_id, value_set=wanted)

    with contextlib.suppress(Exception):  # registered before on this connection
        con.remove_function(IDS_FUNCTION)
    con.create_function(IDS_FUNCTION, member, ["VARCHAR"], "BOOLEAN", type="arrow")  # type: ignore[call-overload]
    return f"{IDS_FUNCTION}(request_id)"


def coupling(
    policy: Policy,
    con: duckdb.DuckDBPyConnection,
    history: KeyHistory | None,
    where: str,
    params: list,
    shared_estimates: bool = False,
) -> Coupling:
    """What couples the requests selected by ``where`` under ``policy`` (``shared_estimates``:
    every partition is given the whole window's estimates, so :data:`ESTIMATES` does not apply)."""
    c = Coupling()
    limits = [*(policy.budgets.limits if policy.budgets is not None else ()), *policy.rate_limits]
    if any(limit.scope == "global" for limit in limits):
        c.everything = "a global budget or rate limit: every request counts against it (one partition)"
        return c
    if not shared_estimates and not _served_by(policy, con, where, params):
        c.everything = ESTIMATES
        return c
    for limit in limits:
        _add_scope(c, limit.scope, limit.name)
    own = _keys_with_own_limits(history)
    for key_id in sorted(own):
        _add_scope(c, "key", key_id)
    _cache_coupling(policy, con, where, params, c)
    return c


def _served_by(policy: Policy, con: duckdb.DuckDBPyConnection, where: str, params: list) -> bool:
    """Whether ``policy`` is the version that served every selected request (a parity replay:
    every decision is the logged one, so no estimate is read)."""
    versions = con.execute(f"SELECT DISTINCT policy_version FROM requests WHERE {where}", params).fetchall()
    return {v for (v,) in versions} <= {policy.version}


def _add_scope(c: Coupling, scope: str, name: str | None) -> None:
    """Couple ``scope``'s subject ``name`` (None: every subject of the scope)."""
    if scope in c.scopes and c.scopes[scope] is None:
        return
    if name is None:
        c.scopes[scope] = None
        return
    names = c.scopes.get(scope) or set()
    c.scopes[scope] = names | {name}


def _keys_with_own_limits(history: KeyHistory | None) -> set[str]:
    """Keys that had a budget or rate limit of their own in any version of their settings
    (every version is a ``create`` or ``update`` event's full settings)."""
    if history is None:
        return set()
    out = set()
    for ev in history.events:
        settings = ev.get("settings") or {}
        if any(settings.get(k) is not None for k in ("budget_usd", "rpm", "tpm")):
            out.add(ev["id"])
    return out


def _cache_coupling(policy: Policy, con: duckdb.DuckDBPyConnection, where: str, params: list, c: Coupling) -> None:
    routes = con.execute(
        f"SELECT route, count(*) FROM requests WHERE {where} AND route IS NOT NULL"
        " AND endpoint = 'chat.completions' GROUP BY route",
        params,
    ).fetchall()
    for route, n in routes:
        s = policy.cache_for(route)
        if s is None:
            continue
        c.cache_routes[route] = ("key" in s.namespace, "team" in s.namespace)
        if s.semantic is not None:
            c.semantic_routes.add(route)
            if n > min(x.max_entries for x in (s.exact, s.semantic) if x is not None):
                c.evicting_routes.add(route)
        elif (
            s.exact is not None
            and n > s.exact.max_entries
            and _busiest_ttl(con, where, params, route, s.exact.ttl_s) > s.exact.max_entries
        ):
            c.evicting_routes.add(route)


def _busiest_ttl(con: duckdb.DuckDBPyConnection, where: str, params: list, route: str, ttl_s: float) -> int:
    """The most requests of ``route`` arriving within ``ttl_s + 2L`` of each other, where L
    bounds how long after its arrival a request's answer enters the cache (its logged store or
    end time, or its admission plus the route's longest latency when it runs only in replay).

    An exact store evicts its oldest entry once ``max_entries`` were stored after it; every
    entry stored after an entry E and before E expires comes from a request that arrived
    within ``(E - L, E + L + ttl)``. When no such span holds more than ``max_entries``
    requests, only expired entries are ever evicted — invisible to every lookup — so the
    route's namespaces do not couple through eviction."""
    sql = f"""
        WITH r AS (SELECT epoch(ts) AS t, cache_stored_ts, epoch(ts_end) AS t_end, admitted_ts, latency_ms
                   FROM requests WHERE {where} AND route = ? AND endpoint = 'chat.completions'),
        lag AS (SELECT greatest(max(cache_stored_ts - t), max(t_end - t), 0)
                       + greatest(max(admitted_ts - t), 0) + coalesce(max(latency_ms), 0) / 1000 AS l FROM r)
        SELECT max(n) FROM (SELECT count(*) OVER (ORDER BY t RANGE BETWEEN CURRENT ROW
                                                  AND (SELECT ? + 2 * coalesce(l, 0) FROM lag) FOLLOWING) AS n FROM r)
    """
    rows = con.execute(sql, [*params, route, ttl_s]).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: set[str] | list[str]) -> str:
    return f"{column} IN ({', '.join(_lit(v) for v in sorted(values))})" if values else "false"


def node_columns(c: Coupling) -> dict[str, str]:
    """SQL expression per kind of coupling value: the value a request couples through (NULL:
    none of that kind). Requests sharing a non-NULL value of one kind are coupled."""
    nodes: dict[str, str] = {}
    for scope in _LIMIT_SCOPES:
        if scope not in c.scopes:
            continue
        col, names = _LIMIT_COLUMN[scope], c.scopes[scope]
        nodes[scope] = col if names is None else f"CASE WHEN {_in(col, names)} THEN {col} END"
    cached = f"endpoint = 'chat.completions' AND {_in('route', list(c.cache_routes))}"
    nodes["route_whole"] = f"CASE WHEN {cached} AND {_in('route', c.evicting_routes)} THEN route END"
    by_key = [r for r, (k, _) in c.cache_routes.items() if k]
    by_team = [r for r, (_, t) in c.cache_routes.items() if t]
    team = "lower(json_extract_string(CAST(metadata AS JSON), '$.team'))"
    nodes["namespace"] = (
        f"CASE WHEN {cached} THEN concat_ws(chr(31), route,"
        f" CASE WHEN {_in('route', by_key)} THEN coalesce(key_id, '') END,"
        f" CASE WHEN {_in('route', by_team)} THEN coalesce({team}, '') END,"
        " nullif(cache_ns_header, '')) END"
    )
    nodes["cache_key"] = f"CASE WHEN {_in('route', c.semantic_routes)} THEN cache_key END"
    return nodes


def components(con: duckdb.DuckDBPyConnection, c: Coupling, where: str, params: list) -> tuple[pa.Table, np.ndarray]:
    """(request_id and ts of every selected request, oldest first; its component label)."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]
    from scipy.sparse import coo_matrix  # type: ignore[import-untyped]
    from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

    nodes = node_columns(c)
    select = ", ".join(f"{expr} AS n{i}" for i, expr in enumerate(nodes.values()))
    tbl = con.sql(
        f"SELECT request_id, epoch(ts) AS ts, {select} FROM requests WHERE {where} ORDER BY ts, request_id",
        params=params,
    ).to_arrow_table()
    n = tbl.num_rows
    rows, cols, offset = [], [], n
    for i in range(len(nodes)):
        col = tbl[f"n{i}"].combine_chunks() if tbl.num_rows else pa.array([], pa.string())
        codes = pc.dictionary_encode(col).indices if len(col) else pa.array([], pa.int32())
        present = np.flatnonzero(~np.asarray(codes.is_null()))
        idx = np.asarray(codes.fill_null(0), dtype=np.int64)[present]
        rows.append(present)
        cols.append(idx + offset)
        offset += int(idx.max()) + 1 if len(idx) else 0
    r, k = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, k)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return tbl.select(["request_id", "ts"]), labels[:n]


def balance(sizes: np.ndarray, parts: int) -> np.ndarray:
    """Partition of each component: largest first onto the least loaded partition (greedy LPT);
    single-request components then fill the partitions up to an even level.

    >>> balance(np.array([5, 1, 1, 3, 1, 1]), 2).tolist()
    [0, 0, 1, 1, 1, 1]
    """
    out = np.zeros(len(sizes), np.int32)
    order = np.argsort(-sizes, kind="stable")
    heap = [(0, p) for p in range(parts)]
    for comp in order[sizes[order] > 1]:
        load, p = heapq.heappop(heap)
        out[comp] = p
        heapq.heappush(heap, (load + int(sizes[comp]), p))
    loads = np.zeros(parts, np.int64)
    for load, p in heap:
        loads[p] = load
    singles = order[sizes[order] == 1]
    quota = _water_fill(loads, len(singles))
    out[singles] = np.repeat(np.arange(parts, dtype=np.int32), quota)
    return out


def _water_fill(loads: np.ndarray, n: int) -> np.ndarray:
    """How many of ``n`` unit items each partition takes to even the loads out (the least
    loaded ones are raised to a common level; the remainder goes one each to the lowest)."""
    parts = len(loads)
    order = np.argsort(loads, kind="stable")
    low = loads[order]
    k = parts
    for j in range(1, parts):
        if (n + int(low[:j].sum())) / j <= low[j]:
            k = j
            break
    level = (n + int(low[:k].sum())) // k
    fill = np.zeros(parts, np.int64)
    fill[:k] = level - low[:k]
    fill[: n - int(fill.sum())] += 1
    quota = np.empty(parts, np.int64)
    quota[order] = fill
    return quota


#: a partition is a whole replay (the policy compiled, a window read, in a worker of its own):
#: a fixed ~0.1 s of CPU that rows in the hundreds do not repay. The plan makes at most one
#: partition per this many rows (`--partitions 100000` on a 312-row log made 312 partitions
#: and ran 81 s for what one process replays in 1 s) ...
ROWS_PER_PARTITION = 1_000
#: ... and at least this many when asked for them, so a small log still splits (tests, a try of an engine)
SMALL_LOG_PARTITIONS = 8


def plan_partitions(
    policy: Policy,
    con: duckdb.DuckDBPyConnection,
    since: datetime | str | None,
    until: datetime | str | None,
    partitions: int,
    history: KeyHistory | None = None,
    shared_estimates: bool = False,
) -> PartitionPlan:
    """Split the requests of ``[since, until)`` (and the rows before ``since`` the replay reads
    for its starting state) into at most ``partitions`` groups that ``policy`` decides
    independently."""
    import pyarrow as pa  # type: ignore[import-untyped]

    where, params = _range(policy, con, since, until)
    c = coupling(policy, con, history, where, params, shared_estimates)
    notes: list[str] = []
    if c.everything:
        partitions = 1
        notes.append(c.everything)
    ids, labels = components(con, c, where, params)
    n_comp = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=n_comp)
    cap = max(SMALL_LOG_PARTITIONS, -(-len(labels) // ROWS_PER_PARTITION))
    parts = max(1, min(partitions, n_comp, cap))
    if parts < partitions and parts == n_comp:
        notes.append(f"{n_comp} independent groups of requests: {parts} partitions, not {partitions}")
    elif parts < partitions:
        notes.append(
            f"{len(labels)} rows: at most {cap} partitions (one per {ROWS_PER_PARTITION:,} rows, at least "
            f"{SMALL_LOG_PARTITIONS}: each is a whole replay), not {partitions}"
        )
    assigned = balance(sizes, parts)[labels] if n_comp else np.zeros(0, np.int32)
    assigned, parts = _renumber(assigned)
    table = pa.table({"request_id": ids["request_id"], "partition": pa.array(assigned, pa.int32())})
    rows = np.bincount(assigned, minlength=parts).tolist() if len(assigned) else [0] * parts
    return PartitionPlan(table, parts, partitions, n_comp, rows, c, notes)


def _range(policy: Policy, con: duckdb.DuckDBPyConnection, since: Any, until: Any) -> tuple[str, list[Any]]:
    """(``where``, params) of the rows a replay of ``[since, until)`` reads: the window, and
    before it, from the start of the budget windows and the longest cache TTL around the
    first request (the spend, rate windows and cached answers it starts from)."""
    from ..decisions.cache import longest_ttl

    clauses, params = ["true"], []
    if since is not None:
        bound = [since, until] if until is not None else [since]
        later = " AND ts < CAST(? AS TIMESTAMPTZ)" if until is not None else ""
        first = con.execute(f"SELECT epoch(min(ts)) FROM requests WHERE ts >= CAST(? AS TIMESTAMPTZ){later}", bound)
        at = (first.fetchall() or [(None,)])[0][0]
        start = min(warmup_since(policy, at), at - longest_ttl(policy)) if at is not None else None
        clauses.append("ts >= CAST(? AS TIMESTAMPTZ)")
        params.append(datetime.fromtimestamp(start, UTC) if start is not None else since)
    if until is not None:
        clauses.append("ts < CAST(? AS TIMESTAMPTZ)")
        params.append(until)
    return " AND ".join(clauses), params


def _renumber(assigned: np.ndarray) -> tuple[np.ndarray, int]:
    """Partitions numbered 0..k-1 with no empty one."""
    if not len(assigned):
        return assigned.astype(np.int32), 1
    used, inverse = np.unique(assigned, return_inverse=True)
    return inverse.astype(np.int32), len(used)
