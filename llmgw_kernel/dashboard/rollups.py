"""The overview's and the routing page's additive figures per sealed segment and minute, kept
beside the log.

The overview's counts and sums (requests, errors by outcome and reason, tokens, cost, cache hits
and savings, retries, upstream failures, rescues, fallbacks, attempts by target, routes) and the
routing page's (per route: requests, errors, upstream failures, rescues, fallbacks; target shares,
first planned and served) add up: over a window they are the sums of the same figures over its
minutes. A sealed segment never changes (docs/log.md), so its figures per minute are computed
once — :data:`ROLLUP_SQL`, :data:`ATTEMPTS_SQL` and :data:`ROUTING_SQL` over that segment — and
stored beside the log:

    <data-dir>/dashboard-cache/<segment name>.<size>.<mtime ns>.<inode>.<crc32 hex>.arrow

An overview over a window then reads, per visible segment that has such an entry, its rows of
the minutes wholly inside the window, and scans from Parquet only the rest: the segments without
an entry (the live tail: segments under :data:`MIN_BYTES`, and those not yet rolled up) and the
rolled segments' rows in the window's partial first and last minute. Both halves are aggregated
by the same SQL, so a figure is the same sum either way (float sums up to their rounding order).
Percentiles (the overview's, the routing page's per target) and the newest rows do not add up:
they are always scanned.

- **Identity.** An entry names its segment with its size, modification time and inode: a
  segment rewritten in place (``segments.ensure_columns``) or a name reused is another entry.
- **Integrity.** The name ends with the CRC-32 of the file's bytes and the file's schema names
  its segment and a hash of the SQL it was rolled up with; an entry whose bytes do not match, that
  names another segment (copied over another's name, scribbled on) or other SQL (another
  release's) is ignored and removed, and that segment is scanned (and rolled up again) — never a
  wrong answer.
- **Visibility.** Which segments a query reads is the view's own rule
  (:func:`~llmgw_kernel.log.segments.visible`), so an entry of a segment merged away is not read;
  such entries are removed when their segment is gone from the directory.
- **Who writes them.** The dashboard process, in a background thread (:class:`Builder`) that
  starts after the overview's first answer (a cold process answers its first page by scanning, as
  before) and rolls up one segment at a time (~0.09 CPU s per 50,000 rows); a segment is read for
  it once. Memory: only each entry's minute range is held; the entries are read for a window's
  query and dropped.

Used only for a window with no filter but ``route`` (the entries are per route, :func:`window_plan`): any other filter
(team, key, user, model, provider) is answered by scanning. ``LLMGW_DASHBOARD_CACHE=off`` turns
the entries off, ``=<dir>`` keeps them elsewhere (a read-only data directory); a cache that
cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durable import write_atomic
from ..log.schema import LIST_SCALARS_SQL
from ..log.segments import ANCHOR_NAME, _sql_path, derived_dir, listing, log_dir, visible
from .filters import COLUMNS, Filters
from .sql import (
    CHECK_SQL,
    CLIENT_SQL,
    FELL_BACK_SQL,
    HIT_SQL,
    NOT_ATTEMPTED_SQL,
    PLANNED_SQL,
    RETRIED_SQL,
    UPSTREAM_FAILED_SQL,
    rows_with_list_scalars,
)  # fmt: skip

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa  # type: ignore[import-untyped]

#: segments smaller than this are the live tail (recent flushes, merged soon): always scanned
MIN_BYTES = 1 << 20
CACHE_DIR = "dashboard-cache"
ENV = "LLMGW_DASHBOARD_CACHE"
MINUTE_S = 60
_SEGMENT_META = b"llmgw_segment"
_SQL_META = b"llmgw_sql"
_ENTRY_RE = re.compile(
    r"^(?P<seg>seg-.+\.parquet)\.(?P<size>\d+)\.(?P<mtime>\d+)\.(?P<inode>\d+)\.(?P<crc>[0-9a-f]{8})\.arrow$"
)
log = logging.getLogger("llmgw.dashboard")

#: a row's minute (epoch minutes)
MINUTE_SQL = f"CAST(floor(epoch(ts) / {MINUTE_S}) AS BIGINT)"

# Per minute, route, kind of row and outcome: every additive figure of the overview. Over every row
# (a cache check's cost and tokens are spend, sql.CHECK_SQL); the page's counts take is_check false.
ROLLUP_SQL = f"""
SELECT {MINUTE_SQL} AS m, route, coalesce({CHECK_SQL}, false) AS is_check, outcome, error_type,
       count(*) AS n, CAST(sum(prompt_tokens) AS BIGINT) AS pt, CAST(sum(completion_tokens) AS BIGINT) AS ct,
       sum(cost_usd) AS cost, count(cache) AS cacheable, count(*) FILTER (WHERE {HIT_SQL}) AS hits,
       count(*) FILTER (WHERE cache = 'semantic-hit') AS semantic_hits, sum(saved_usd) AS saved,
       count(*) FILTER (WHERE {RETRIED_SQL}) AS retried, count(*) FILTER (WHERE {UPSTREAM_FAILED_SQL}) AS failed,
       count(*) FILTER (WHERE {FELL_BACK_SQL}) AS fell_back, min(error_message) AS example
FROM {{source}}
GROUP BY ALL
"""

# Per minute, route and attempted target: every upstream attempt of the client requests (a target
# skipped — its breaker open — was not called: not an attempt, not a failure; docs/routing.md).
ATTEMPTS_SQL = f"""
SELECT {MINUTE_SQL} AS m, route, x.target AS target, count(*) AS attempts,
       count(*) FILTER (WHERE x.error IS NOT NULL) AS failed
FROM (SELECT ts, route, unnest(attempts) AS x FROM {{relation}} WHERE ({{where}}) AND {CLIENT_SQL})
WHERE NOT {NOT_ATTEMPTED_SQL}
GROUP BY ALL
"""

# Per minute, route, first planned target, served target and ok-or-not: the routing page's routes
# and shares (routing_data.py), over the client requests. Reads only scalar columns (the list
# scalars stand for the lists), so a window without entries scans as narrowly as before.
ROUTING_SQL = f"""
SELECT {MINUTE_SQL} AS m, route, first_planned, target, coalesce(outcome = 'ok', false) AS ok, count(*) AS n,
       count(*) FILTER (WHERE {UPSTREAM_FAILED_SQL}) AS failed, count(*) FILTER (WHERE {FELL_BACK_SQL}) AS fell_back
FROM {{source}}
GROUP BY ALL
"""

# Per upstream attempt of the client requests: its minute, route, target, latency and whether it
# failed. The routing page's per-target latency percentiles do not add up, so the values themselves
# are kept and read instead of decoding the attempts lists again (~4x the CPU: routing_data.per_target):
# as one Arrow IPC stream in one row of the entry (kind "L", column ``blob``; minute int32, route and
# target dictionary-coded: ~17 bytes an attempt), decoded only by a query that asks for them.
LATENCY_SQL = f"""
SELECT {MINUTE_SQL} AS m, route, x.target AS target, x.latency_ms AS latency_ms, x.error IS NOT NULL AS att_failed
FROM (SELECT ts, route, unnest(attempts) AS x FROM {{relation}} WHERE ({{where}}) AND {CLIENT_SQL})
WHERE NOT {NOT_ATTEMPTED_SQL}
"""

_SCALAR_COLUMNS = (
    "ts, route, endpoint, outcome, error_type, error_message, prompt_tokens, completion_tokens, cost_usd, cache, "
    "saved_usd, retries, target"
)
_ROUTING_COLUMNS = "ts, route, outcome, target, retries"
#: each kind of an entry's rows (its ``kind`` column) and the columns it holds
KINDS = {
    "r": ("m", "route", "is_check", "outcome", "error_type", "n", "pt", "ct", "cost", "cacheable", "hits",
          "semantic_hits", "saved", "retried", "failed", "fell_back", "example"),
    "a": ("m", "route", "target", "attempts", "failed"),
    "t": ("m", "route", "first_planned", "target", "ok", "n", "failed", "fell_back"),
    "L": ("blob",),  # one row: LATENCY_SQL's rows, an Arrow IPC stream
}  # fmt: skip


#: the SQL an entry was rolled up with: an entry of other SQL (another release's) is not used
#: (with the list scalars' derivation for rows written before their columns)
_SQL_TEXT = (
    ROLLUP_SQL + ATTEMPTS_SQL + ROUTING_SQL + LATENCY_SQL + _SCALAR_COLUMNS + _ROUTING_COLUMNS + PLANNED_SQL
    + repr(sorted(LIST_SCALARS_SQL.items()))
)  # fmt: skip
_SQL_TAG = hashlib.blake2b(_SQL_TEXT.encode(), digest_size=8).hexdigest().encode()


def rollup_source(relation: str, where: str) -> str:
    """The rows of ``relation`` matching ``where``, with the list scalars (derived from the lists
    for rows written before those columns: :func:`.sql.rows_with_list_scalars`)."""
    return rows_with_list_scalars(_SCALAR_COLUMNS, relation, where)


def routing_source(relation: str, where: str) -> str:
    """The client requests of ``relation`` matching ``where`` with the columns of :data:`ROUTING_SQL`."""
    return rows_with_list_scalars(_ROUTING_COLUMNS, relation, f"({where}) AND {CLIENT_SQL}")


def cache_root(data_dir: Path) -> Path | None:
    """Where the entries of ``data_dir``'s log live (None: turned off)."""
    return derived_dir(data_dir, ENV, CACHE_DIR)


@dataclass(frozen=True, slots=True)
class Plan:
    """How one query reads a window: the entries' tables (rows of whole minutes ``lo`` ≤ m <
    ``hi`` only), and the SQL relation of the rows to scan (``scan``: every row of the unrolled
    segments, the rolled ones' rows outside those minutes)."""

    rolled: tuple[Path, ...]
    rollups: pa.Table | None
    attempts: pa.Table | None
    routing: pa.Table | None
    scan: str
    lo: int
    hi: int
    route: str | None = None
    latency_blobs: tuple[pa.Buffer, ...] = ()

    def latency(self) -> pa.Table | None:
        """The entries' LATENCY_SQL rows of the window's whole minutes (None: no entry), decoded
        from their IPC streams (only the routing page's per-target figures ask)."""
        if not self.latency_blobs:
            return None
        import pyarrow as pa
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        table = pa.concat_tables([pa.ipc.open_stream(b).read_all() for b in self.latency_blobs])
        m = table.column("m")
        keep = pc.and_(pc.greater_equal(m, self.lo), pc.less(m, self.hi))
        if self.route is not None:
            keep = pc.and_(keep, pc.equal(table.column("route"), self.route))
        return table.filter(keep)


def _identity(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return f"{path.name}.{st.st_size}.{st.st_mtime_ns}.{st.st_ino}"


class Rollups:
    """The entries of one data directory's log (thread-safe)."""

    def __init__(self, data_dir: str | os.PathLike[str], min_bytes: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.log = log_dir(self.data_dir)
        self.root = cache_root(self.data_dir)
        self.min_bytes = MIN_BYTES if min_bytes is None else min_bytes
        self._ranges: dict[str, tuple[int, int]] = {}  # entry name -> (first, last minute), once verified
        self._lock = threading.Lock()

    def _entries(self) -> dict[str, str]:
        """identity -> entry file name, of the entries on disk."""
        if self.root is None:
            return {}
        try:
            names = os.listdir(self.root)
        except OSError:
            return {}
        out = {}
        for name in names:
            m = _ENTRY_RE.match(name)
            if m is not None:
                out[name[: m.start("crc") - 1]] = name
        return out

    def sealed(self, now: float) -> list[tuple[Path, str]]:
        """The visible segments that are worth an entry, with their identity."""
        found = listing(self.log)
        shown = visible(found, now)
        out = []
        for seg, _ in found:
            if seg.path.name not in shown or seg.path.name == ANCHOR_NAME:
                continue
            ident = _identity(seg.path)
            if ident is not None and int(ident.split(".")[-3]) >= self.min_bytes:
                out.append((seg.path, ident))
        return out

    def plan(self, now: float, since: float, until: float, route: str | None) -> Plan:
        """What a window's query reads from entries and what it scans (see :class:`Plan`)."""
        lo, hi = math.ceil(since / MINUTE_S), math.floor(until / MINUTE_S)
        found = listing(self.log)
        shown = sorted(s.path for s, _ in found if s.path.name in visible(found, now))
        anchor = self.log / ANCHOR_NAME
        entries = self._entries() if hi > lo else {}
        rolled: list[Path] = []
        edged: list[Path] = []  # rolled segments with rows outside the whole minutes: their edges scanned
        tables: list[pa.Table] = []
        for path in shown:
            ident = _identity(path) if path.name != ANCHOR_NAME else None
            name = entries.get(ident) if ident is not None else None
            if name is None:
                continue
            table = self._read(name, path.name, lo, hi)
            if table is not False:
                rolled.append(path)
                first, last = self._ranges.get(name, (0, -1))
                if not lo <= first <= last < hi:
                    edged.append(path)
                if table is not None:
                    tables.append(table)
        unrolled = [p for p in shown if p not in rolled and p.name != ANCHOR_NAME]
        parts = [f"SELECT * FROM read_parquet([{_files([anchor, *unrolled])}])"]
        if edged:
            edges = f"(ts < to_timestamp({lo * MINUTE_S}) OR ts >= to_timestamp({hi * MINUTE_S}))"
            parts.append(f"SELECT * FROM read_parquet([{_files([anchor, *edged])}]) WHERE {edges}")
        scan = "(" + " UNION ALL ".join(parts) + ")"
        rollups, attempts, routing, blobs = _split(tables, lo, hi, route)
        return Plan(tuple(rolled), rollups, attempts, routing, scan, lo, hi, route, blobs)

    def _read(self, name: str, segment: str, lo: int, hi: int) -> pa.Table | None | bool:
        """An entry's table (None: no minute of it in [lo, hi); False: not sound, removed)."""
        import pyarrow as pa

        assert self.root is not None
        known = self._ranges.get(name)
        if known is not None and (known[1] < lo or known[0] >= hi):
            return None
        path = self.root / name
        try:
            data = path.read_bytes()
            if f"{zlib.crc32(data):08x}" != _ENTRY_RE.match(name).group("crc"):  # type: ignore[union-attr]
                raise ValueError("CRC-32 differs")
            table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
            meta = table.schema.metadata or {}
            if meta.get(_SEGMENT_META) != segment.encode():
                raise ValueError("names another segment")
            if meta.get(_SQL_META) != _SQL_TAG:
                raise ValueError("rolled up by other SQL")
        except FileNotFoundError:
            return False
        except Exception as exc:
            log.warning("dashboard cache entry %s not used (%s): removed, its segment scanned", name, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            self._ranges.pop(name, None)
            return False
        if known is None:
            import pyarrow.compute as pc  # type: ignore[import-untyped]

            ms = pc.min_max(table.column("m"))
            first, last = ms["min"].as_py(), ms["max"].as_py()
            self._ranges[name] = (0, -1) if first is None else (first, last)  # (0, -1): no minute
        return table

    def build(self, con: duckdb.DuckDBPyConnection, path: Path, ident: str) -> bool:
        """Roll up one sealed segment and store its entry (False: the cache cannot be written)."""
        import pyarrow as pa

        if self.root is None:
            return False
        anchor = self.log / ANCHOR_NAME
        relation = f"read_parquet([{_files([anchor, path])}])"
        rows = con.sql(ROLLUP_SQL.format(source=rollup_source(relation, "true"))).to_arrow_table()
        att = con.sql(ATTEMPTS_SQL.format(relation=relation, where="true")).to_arrow_table()
        rt = con.sql(ROUTING_SQL.format(source=routing_source(relation, "true"))).to_arrow_table()
        lat = con.sql(LATENCY_SQL.format(relation=relation, where="true")).to_arrow_table()
        blob = pa.table({"blob": pa.array([_ipc_stream(lat)], pa.binary())})
        kinds = [_kind(rows, "r"), _kind(att, "a"), _kind(rt, "t"), _kind(blob, "L")]
        table = pa.concat_tables(kinds, promote_options="default")
        table = table.replace_schema_metadata({_SEGMENT_META: path.name.encode(), _SQL_META: _SQL_TAG})
        if _identity(path) != ident:  # rewritten or deleted while it was read
            return True
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(self.root / f"{ident}.{zlib.crc32(data):08x}.arrow", data, mode=0o644, durable=False)
        except OSError as exc:
            log.info("dashboard cache %s not written (%s): the overview scans", self.root, exc)
            return False
        return True

    def build_missing(
        self,
        con: duckdb.DuckDBPyConnection | Callable[[], duckdb.DuckDBPyConnection],
        now: float,
        stop: threading.Event | None = None,
    ) -> int:
        """Roll up every sealed segment without an entry; remove the entries of segments gone
        (or rewritten). Returns how many were built. ``con`` may be a function making the
        connection, called only when there is a segment to roll up."""
        with self._lock:
            wanted = self.sealed(now)
            have = self._entries()
            present = {_identity(s.path) for s, _ in listing(self.log)}
            for ident, name in have.items():
                if ident not in present and self.root is not None:
                    with contextlib.suppress(OSError):
                        (self.root / name).unlink()
                    self._ranges.pop(name, None)
            built = 0
            for path, ident in wanted:
                if stop is not None and stop.is_set():
                    break
                if ident in have:
                    continue
                if callable(con):
                    con = con()
                if not self.build(con, path, ident):
                    break
                built += 1
            return built


def _kind(table: pa.Table, kind: str) -> pa.Table:
    import pyarrow as pa

    return table.append_column("kind", pa.repeat(pa.scalar(kind, pa.string()), table.num_rows))


def _ipc_stream(lat: pa.Table) -> bytes:
    """LATENCY_SQL's rows as an Arrow IPC stream, minute int32, route and target dictionary-coded."""
    import pyarrow as pa

    table = pa.table({
        "m": lat["m"].cast(pa.int32()), "route": lat["route"].dictionary_encode(),
        "target": lat["target"].dictionary_encode(), "latency_ms": lat["latency_ms"], "att_failed": lat["att_failed"],
    }).combine_chunks().unify_dictionaries()  # fmt: skip
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def _split(
    tables: list[pa.Table], lo: int, hi: int, route: str | None
) -> tuple[pa.Table | None, pa.Table | None, pa.Table | None, tuple[pa.Buffer, ...]]:
    """The entries' request, attempt and routing rows of minutes [lo, hi) (and ``route``), each
    with the columns of its SQL, and their attempt latencies' IPC streams (:meth:`Plan.latency`)."""
    if not tables:
        return None, None, None, ()
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.concat_tables(tables, promote_options="default")
    kind = table.column("kind")
    blobs = tuple(v.as_buffer() for v in table.filter(pc.equal(kind, "L")).column("blob") if v.is_valid)  # zero-copy
    keep = pc.and_(pc.greater_equal(table.column("m"), lo), pc.less(table.column("m"), hi))
    if route is not None:
        keep = pc.and_(keep, pc.equal(table.column("route"), route))
    table = table.filter(pc.fill_null(keep, False))
    kind = table.column("kind")
    rows, att, routing = (table.filter(pc.equal(kind, k)).select(list(KINDS[k])) for k in ("r", "a", "t"))
    return rows, att, routing, blobs


def window_plan(rollups: Rollups, filters: Filters, now: float) -> Plan | None:
    """How a page's query reads ``filters``' window (None: scan every row — a filter the entries
    cannot answer, they being per route: team, key, user, model, provider)."""
    if any(getattr(filters, name) is not None for name in COLUMNS if name != "route"):
        return None
    since, until = filters.bounds(now)
    return rollups.plan(time.time(), since, until, filters.route)  # the view's clock, not the page's


def arrow(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pa.Table:
    """A query's rows as Arrow (a result another page left unread on the shared connection is
    dropped first: only one may be open)."""
    con.abort()
    return con.sql(sql, params=params).to_arrow_table()


def with_stored(scanned: pa.Table, stored: pa.Table | None) -> pa.Table:
    """The rows of a figure's SQL over the scanned rows and the stored entries' (one table)."""
    import pyarrow as pa

    return scanned if stored is None else pa.concat_tables([stored.cast(scanned.schema), scanned])


def _files(paths: list[Path]) -> str:
    return ", ".join("'" + _sql_path(p) + "'" for p in paths)


class Builder:
    """Rolls up the sealed segments in the background, one at a time: a first round ``delay_s``
    after :meth:`start` (the page that started it is drawn first), then every ``interval_s``."""

    def __init__(self, rollups: Rollups, delay_s: float = 5.0, interval_s: float = 30.0) -> None:
        self.rollups = rollups
        self.delay_s = delay_s
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and self.rollups.root is not None:
            self._thread = threading.Thread(target=self._run, name="llmgw-dashboard-rollups", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import duckdb

        if self._stop.wait(self.delay_s):
            return
        made: list[duckdb.DuckDBPyConnection] = []

        def connect() -> duckdb.DuckDBPyConnection:  # only when a segment needs rolling up (~0.03 CPU s)
            if not made:
                made.append(duckdb.connect(config={"threads": 1, "memory_limit": "256MB"}))
                made[0].execute("SET TimeZone = 'UTC'")
            return made[0]

        try:
            while not self._stop.is_set():
                try:
                    self.rollups.build_missing(connect, time.time(), self._stop)
                except Exception:  # a segment deleted mid-read, a full disk: tried again next round
                    log.exception("dashboard rollups: a round failed")
                self._stop.wait(self.interval_s)
        finally:
            for con in made:
                con.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


__all__ = [
    "ATTEMPTS_SQL", "KINDS", "LATENCY_SQL", "MIN_BYTES", "ROLLUP_SQL", "ROUTING_SQL", "Builder", "Plan", "Rollups",
    "arrow", "cache_root", "rollup_source", "routing_source", "window_plan", "with_stored",
]  # fmt: skip
