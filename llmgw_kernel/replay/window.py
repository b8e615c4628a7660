"""The logged window a replay reads: the ``requests`` view's rows in ``[since, until)``, oldest first.

The window is held as Arrow columns (one DuckDB query, only the columns asked for) and read
two ways:

- **as columns**, for work done in bulk: :meth:`Window.arrow`, :meth:`Window.numpy` (numbers,
  NaN for NULL), :meth:`Window.codes` (a string column as int32 codes into its distinct
  values), :meth:`Window.epoch` (a time column as float64 seconds) and
  :meth:`Window.embeddings` (the logged vectors as one float32 matrix, read in bounded chunks);
- **as a dict of Python lists** (``window["route"]``, ``window.get(...)``, ``in``, iteration),
  the contract per-row stages were written against: a column becomes a list the first time
  it is read, once, and stays cached. Stages may attach their own entries
  (``window["_key_history"] = ...``).

``len(window)`` is the number of rows.

>>> import tempfile
>>> w = load_window(tempfile.mkdtemp())
>>> len(w), w["route"], w.numpy("latency_ms").shape, w.embeddings()[0].shape
(0, [], (0,), (0, 0))
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..log.reader import open_log
from .window_embeddings import EmbeddingSource, positions

if TYPE_CHECKING:
    import duckdb

    from . import segment_cache

LOG_COLUMNS = (
    "request_id", "ts", "endpoint", "route", "policy_version", "plan", "target", "status", "outcome",
    "error_type", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "stream",
    "attempts", "metadata", "request_body", "api", "ts_end", "key_id", "temperature", "cache", "cache_source",
    "cache_control", "cache_ns_header", "cache_key", "cache_context", "cache_lookup_ts", "cache_stored_ts",
    "cache_features", "cache_threshold", "cache_reason",
    "embedding", "embedding_model", "cost_usd", "team", "end_user", "key_version", "admission",
    "admitted_ts", "settled_ts", "reserved_usd", "reserved_tokens", "reserved_prompt_tokens", "cached_tokens",
    "origin", "route_draw",
)  # fmt: skip
_LOG_COLUMNS = LOG_COLUMNS  # the name it had before
#: the wide JSON columns (the logged bodies, metadata): read from the log each time a caller asks
#: for them as columns (:meth:`Window.arrow`, :meth:`Window.codes` once), never held by the
#: window — a 1M-row log's bodies are ~100 MB of Arrow, and replay reads them once, for a few rows
LENT = frozenset({"request_body", "response_body", "metadata"})
EMBEDDING_CHUNK_ROWS = 16_384  # vectors converted per step (bounded memory beside the matrix)


def _window_sql(
    since: datetime | str | None, until: datetime | str | None, where: str | None = None, params_: Any = ()
) -> tuple[str, list[Any]]:
    clauses: list[str] = [f"({where})"] if where else []
    params: list[Any] = list(params_)
    if since is not None:
        clauses.append("ts >= CAST(? AS TIMESTAMPTZ)")
        params.append(since)
    if until is not None:
        clauses.append("ts < CAST(? AS TIMESTAMPTZ)")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class _Log:
    """The query a window's columns are read with: the window's predicate over ``requests``,
    in scan order (no ORDER BY: the window sorts once, by (ts, request_id), and reuses the
    permutation). Scan order is not guaranteed to repeat (a predicate that joins returns rows
    in hash order; the log grows), so each later scan also reads ``request_id`` and is checked
    against the window's, and matched by (ts, request_id) when it differs."""

    def __init__(self, con: duckdb.DuckDBPyConnection, where: str, params: list[Any], present: set[str]) -> None:
        self.con, self.where, self.params, self.present = con, where, params, present
        #: columns computed by DuckDB in the scan (:meth:`Window.computed`): name -> SQL expression
        self.computed: dict[str, str] = {}

    def scan(self, names: Sequence[str], where: str | None = None) -> pa.Table:
        """The columns ``names`` as one Arrow table (scan order), read with one DuckDB thread:
        the result's buffers are DuckDB's, and a parallel scan leaves freed buffers in one
        malloc arena per thread that are never returned (a 1M-row window's 19 columns: ~110 MB
        more RSS, and no less CPU on a loaded machine). ``where``: only the window's rows where
        this SQL predicate also holds."""
        with _one_thread(self.con):
            return self._relation(names, where).to_arrow_table(SCAN_BATCH_ROWS)

    def batches(self, names: Sequence[str], rows: int = 65_536, where: str | None = None) -> pa.RecordBatchReader:
        """:meth:`scan` streamed in record batches (scan order): a ``pyarrow.RecordBatchReader``."""
        return self._relation(names, where).to_arrow_reader(rows)

    def _relation(self, names: Sequence[str], where: str | None = None) -> duckdb.DuckDBPyRelation:
        cols = ", ".join(
            f"{self.computed[c]} AS {c}" if c in self.computed
            else _column(c) if c in self.present else f"NULL AS {c}"  # logs older than a column
            for c in names
        )  # fmt: skip
        cond = self.where
        if where:
            cond = f"{cond} AND ({where})" if cond else f" WHERE ({where})"
        return self.con.sql(f"SELECT {cols} FROM requests{cond}", params=self.params or None)


def _column(name: str) -> str:
    """How the window reads log column ``name``: a logged cost that is no request's (not finite, or
    beyond :data:`~llmgw_kernel.decisions.cost.MAX_COST_USD`: an import before costs were bounded)
    is read as unknown (NULL), so no sum of costs overflows."""
    if name in ("cost_usd", "reserved_usd"):
        from ..decisions.cost import real_cost_sql

        return f"CASE WHEN {real_cost_sql(name)} THEN {name} END AS {name}"
    return name


@contextlib.contextmanager
def _one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block with DuckDB's ``threads`` at 1, then put the setting back."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    if threads == 1:
        yield
        return
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {threads}")


def release_memory() -> None:
    """Give memory freed by C allocations back to the system: Arrow's pool, and glibc's malloc
    heap (DuckDB's Arrow results, numpy's arrays and the compiled fold's buffers are malloc'ed;
    freed, their pages stay in the process otherwise and add to the replay's peak: after the
    fold of a 1M-row window, ~270 MB)."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]  # glibc
    except (OSError, AttributeError):  # another C library: nothing to trim
        return None


_MALLOC_TRIM = _malloc_trim()
#: rows per Arrow batch of a scan: a window's column is one array (DuckDB's default batches would
#: be ~80 arrays per 1M rows, concatenated — copied — by every reader that needs one array)
SCAN_BATCH_ROWS = 1 << 22
#: a string column whose distinct values are at most this share of its rows is held as codes
CODED_MAX_SHARE = 0.25
#: rows sampled to tell whether a column is worth coding
CODED_SAMPLE_ROWS = 65_536


Coded = dict[str, tuple[np.ndarray, list[Any]]]  # column -> (int32 code per row, -1 for NULL; the values)


def _compact(
    table: pa.Table, keep: Sequence[str] = ("request_id", "ts"), scanned: bool = False
) -> tuple[pa.Table, Coded]:
    """``table`` in the forms the window holds: a string or list-of-strings column of few
    distinct values as a dictionary column (an int32 code per row, in order of first appearance),
    the others as they are; and the codes of the coded columns as :meth:`Window.codes` returns
    them — the dictionary column's indices are those very arrays (one copy, not two). A 1M-row
    window's 10 such columns: ~135 MB of strings held as ~40 MB.

    ``scanned``: ``table`` is a DuckDB result, whose columns' buffers are freed together, only once
    none of them is referenced — the plain columns kept would hold the coded columns' strings
    too (a 1M-row window: ~115 MB); they are copied out of it when some column was coded."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    coded: Coded = {}
    for name in table.column_names:
        col = table.column(name)
        if name not in keep and _worth_coding(col):
            col, coded[name] = _dictionary(_whole(col))
        arrays.append(col)
    if scanned and coded:
        arrays = [a if n in coded else _copied(a) for n, a in zip(table.column_names, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, names=table.column_names), coded


def _copied(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """``col`` in buffers of its own (Arrow's pool), not sharing a DuckDB result's."""
    return pa.chunked_array([pa.concat_arrays([c, pa.array([], c.type)]) for c in col.chunks], col.type)


def _worth_coding(col: pa.ChunkedArray) -> bool:
    """A string (or list of strings) column whose first rows' values (NULL aside) are few distinct ones."""
    typ = col.type
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        if not (pa.types.is_string(typ.value_type) or pa.types.is_large_string(typ.value_type)):
            return False
    elif not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        return False
    sample = _joined(_whole(col.slice(0, CODED_SAMPLE_ROWS))).drop_null()  # ids of a few rows (cache_source): not coded
    return len(pc.unique(sample)) <= CODED_MAX_SHARE * max(len(sample), 1)


def _joined(col: pa.Array) -> pa.Array:
    """A list column as one string per row (its elements joined with :data:`PLAN_SEP`)."""
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return pc.binary_join(col, PLAN_SEP)
    return col


def _dictionary(col: pa.Array) -> tuple[pa.DictionaryArray, tuple[np.ndarray, list[Any]]]:
    """``col`` as a dictionary array with int32 indices in order of first appearance (a list
    column: coded by its elements joined, its dictionary the lists themselves), and (its codes,
    -1 for NULL, as a numpy array the indices share; the values, a list joined)."""
    joined = _joined(col)
    enc = joined.dictionary_encode()
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)  # numpy's own
    values = enc.dictionary.to_pylist()
    dictionary = enc.dictionary if joined is col else pa.array([split_plan(v) for v in values], col.type)
    indices = pa.array(codes, mask=codes < 0)  # no copy: the data buffer is ``codes``'
    return pa.DictionaryArray.from_arrays(indices, dictionary), (codes, values)


def _us(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A time column as int64 epoch microseconds."""
    return _whole(column).cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()  # type: ignore[no-any-return]


def _over_table(table: pa.Table, sql: str) -> pa.Table:
    """``sql`` over ``table`` (a window given as columns), seen as ``t``: its columns, the log's
    columns it lacks as NULL text, and ``_row`` (each row's position)."""
    import duckdb

    n = table.num_rows
    extra = {c: pa.nulls(n, pa.string()) for c in LOG_COLUMNS if c not in table.column_names}
    t = pa.table({**{c: table.column(c) for c in table.column_names}, **extra, "_row": pa.array(np.arange(n))})
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("t", t)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one array (a chunked one concatenated; one chunk: itself, not a copy)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _permuted(table: pa.Table, order: pa.Array) -> pa.Table:
    """``table.take(order)``; when ``order`` moves only a few rows (a log already in time order
    but for rows that share a time stamp), only the runs it moves are gathered and the rest is
    sliced (no copy): a whole-table take of list and string columns costs ~0.5 s per 1M rows."""
    idx = order.to_numpy(zero_copy_only=False)
    moved = np.flatnonzero(idx != np.arange(len(idx), dtype=idx.dtype))  # same dtype: uint64 vs int64 goes via float
    if moved.size > len(idx) // 100:
        return table.take(order)
    # runs of moved rows that are permutations of themselves (a tie group is contiguous in the scan)
    breaks = np.flatnonzero(np.diff(moved) > 1) + 1
    pieces: list[pa.Table] = []
    at = 0
    for run in np.split(moved, breaks) if moved.size else []:
        lo, hi = int(run[0]), int(run[-1]) + 1
        inside = idx[lo:hi]
        if inside.min() < lo or inside.max() >= hi:  # moves rows across runs: gather everything
            return table.take(order)
        pieces += [table.slice(at, lo - at), table.slice(lo, hi - lo).take(pa.array(inside - lo))]
        at = hi
    pieces.append(table.slice(at))
    return pa.concat_tables(pieces)


class Window(dict[str, Any]):
    """One logged window: Arrow columns, readable in bulk or as the old dict of Python lists.

    A column is materialised as a list on first ``window[name]`` (``__missing__``) and kept;
    entries a stage sets are ordinary dict entries. ``len()`` is the number of rows."""

    def __init__(
        self, log: _Log | None, table: pa.Table, order: pa.Array | None, names: Sequence[str], embeddings: bool
    ) -> None:
        super().__init__()
        self._log = log
        self._table = table  # the columns read so far, in window order
        self._order = order  # scan row of each window row (None: the scan is in window order)
        self._names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._source: EmbeddingSource | None = None
        if embeddings and log is not None:
            self._source = EmbeddingSource(log.con if "embedding" in log.present else None, log.where, log.params)
        self._memo: dict[tuple[str, str], Any] = {}
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None
        #: the segments the window was read from through the columnar cache (None: read through the view)
        self._segments: segment_cache.Source | None = None

    def prefetch(self, names: Sequence[str]) -> None:
        """Read several columns in one scan (each column is otherwise read when first used).
        Columns in :data:`LENT` are not read here: they are read each time they are asked for."""
        missing = [n for n in dict.fromkeys(names) if n in self._names and n != "embedding" and n not in LENT]
        missing = [n for n in missing if n not in self._table.column_names]
        if not missing or self._log is None:
            return
        for got, coded in self._reads(missing):
            self._memo.update({("codes", name): c for name, c in coded.items()})
            for name in got.column_names:
                self._table = self._table.append_column(name, got.column(name))
            del got
        release_memory()

    def _reads(self, missing: list[str]) -> Iterator[tuple[pa.Table, Coded]]:
        """``missing`` in the forms the window holds them (few-valued strings coded): the log's
        columns through the segment cache when the window was loaded through it (no Parquet
        decoded, no string coded again for a cached segment), the rest in one scan."""
        assert self._log is not None
        rest = missing
        if self._segments is not None:
            log = self._log
            mine = [n for n in missing if n in log.present and n not in log.computed]
            more = self._through_cache(mine) if mine else None
            if more is not None:
                rest = [n for n in missing if n not in mine]
                yield more
        if rest:
            yield _compact(self._read(rest).select(rest), scanned=True)

    def _through_cache(self, names: list[str]) -> tuple[pa.Table, Coded] | None:
        """Log columns ``names`` of the window's rows read through the segment cache (None: the
        segments changed since the window was loaded — the window scans from then on)."""
        from . import segment_cache

        assert self._log is not None and self._segments is not None
        ids = self._table.column("request_id")
        more = segment_cache.load_more(self._log.con, self._segments, names, self._order, ids)
        if more is None:
            self._segments = None
        return more

    def logged(self, name: str) -> pa.Array | None:
        """Log column ``name`` (one the window need not expose: e.g. ``exact_key``) of every window
        row, read through the segment cache when the window was loaded through it, not held (a
        dictionary array when its values are few); None when the window was not, or the log has
        no such column (the caller reads it another way)."""
        if self._segments is None or self._log is None or name not in self._log.present or not len(self):
            return None
        more = self._through_cache([name])
        return None if more is None else _whole(more[0].column(name))

    def release(self, names: Sequence[str], codes: bool = False) -> None:
        """Stop holding the columns ``names`` (and their numeric forms): their memory is freed, and
        a later read scans them again. Their codes (:meth:`codes`) stay unless ``codes``: then
        they are dropped too (a 1M-row window's codes of ~17 columns, with their values as
        Python strings: ~50 MB) and made again by a later :meth:`codes`. ``request_id`` and
        ``ts`` (the window's order) are always held."""
        if self._log is None:  # a window given as columns has nothing to read them back from
            return
        names = [n for n in dict.fromkeys(names) if n not in ("request_id", "ts")]
        drop = [n for n in names if n in self._table.column_names]
        forms = ("numpy", "epoch", "codes") if codes else ("numpy", "epoch")
        freed = [k for k in self._memo if k[0] in forms and (k[1] in drop or (codes and k[1] in names))]
        for key in freed:
            del self._memo[key]
        if drop:
            self._table = self._table.drop_columns(drop)
        if drop or freed:
            release_memory()

    @property
    def from_log(self) -> bool:
        """Whether the window was read from a log — its request ids are then unique (log/schema.py);
        a window given as columns (:func:`as_window`) may repeat one."""
        return self._log is not None

    @property
    def coded(self) -> frozenset[str]:
        """The columns whose codes (:meth:`codes`) the window holds now."""
        return frozenset(k[1] for k in self._memo if k[0] == "codes")

    def _read(self, missing: list[str]) -> pa.Table:
        """The columns ``missing`` of the window's rows, in window order (one scan)."""
        assert self._log is not None
        got = self._log.scan(["request_id", *missing])
        if got.num_rows != self._table.num_rows:  # the log changed since the window was read
            got = self._realigned(missing)
        else:
            if self._order is not None:
                got = _permuted(got, self._order)
            # a scan has no guaranteed order (a merge may have rewritten segments meanwhile, a
            # predicate may join): the rows must be the window's, else they are matched by id
            if not got.column("request_id").equals(self._table.column("request_id")):
                got = self._realigned(missing)
        return got

    def take(self, name: str, rows: np.ndarray) -> pa.Array:
        """The values of column ``name`` at window rows ``rows``, in that order. A :data:`LENT`
        column (not held) is streamed from the log and only these rows are kept: a few bodies
        cost a few bodies of memory, not all of them."""
        rows = np.asarray(rows, np.int64)
        if name in self._table.column_names or name not in LENT or self._log is None:
            from .routing_estimates import take_rows

            col = self._held(name)
            inside = not len(rows) or (int(rows.min()) >= 0 and int(rows.max()) < len(col))
            # ascending rows: from the chunks that hold them (a window's columns are a chunk or more
            # per segment; Arrow's take from a chunked column resolves every index's chunk)
            got = take_rows(col, rows) if inside else _whole(col.take(pa.array(rows)))  # else: Arrow's error
            return got.dictionary_decode() if pa.types.is_dictionary(got.type) else got
        if not len(rows):
            return pa.array([], pa.null())
        scan_rows = self._order.to_numpy()[rows] if self._order is not None else rows
        by_scan = np.argsort(scan_rows, kind="stable")
        wanted = scan_rows[by_scan]
        ids: list[pa.Array] = []
        values: list[pa.Array] = []
        at = k = 0
        for batch in self._log.batches(["request_id", name]):
            j = int(np.searchsorted(wanted, at + batch.num_rows, side="left"))
            if j > k:
                local = pa.array(wanted[k:j] - at)
                ids.append(batch.column(0).take(local))
                values.append(batch.column(1).take(local))
            at, k = at + batch.num_rows, j
        want_ids = self._table.column("request_id").take(pa.array(rows[by_scan]))
        got_ids = pa.chunked_array(ids, pa.string())
        if at != len(self) or k != len(wanted) or not got_ids.equals(want_ids):  # the log changed, or another order
            return self._read([name]).column(name).take(pa.array(rows)).combine_chunks()
        back = np.empty(len(rows), np.int64)
        back[by_scan] = np.arange(len(rows))
        return pa.concat_arrays(values).take(pa.array(back))

    def where(self, name: str, predicate: str) -> tuple[np.ndarray, pa.Array]:
        """(the window rows where the SQL ``predicate`` over the log's columns holds, ascending;
        column ``name`` at those rows). DuckDB applies the predicate in its scan, so a
        :data:`LENT` column is read for those rows only (the bodies of the rows refused live,
        not every body)."""
        if self._log is None:
            got = _over_table(self._table, f"SELECT _row, {name} FROM t WHERE {predicate} ORDER BY _row")
            return got.column(0).to_numpy().astype(np.int64), _whole(got.column(1))
        with _one_thread(self._log.con):  # streamed: DuckDB does not hold the whole result beside its Arrow
            got = self._log.batches(["request_id", "ts", name], where=predicate).read_all()
        pos = positions(self._ts_us(), _whole(self._table.column("request_id")), _us(got.column("ts")),
                         _whole(got.column("request_id")))  # fmt: skip
        if np.any(pos < 0) or len(np.unique(pos)) != len(pos):  # rows logged since, or repeated ids: by the column
            rows = np.flatnonzero(pc.fill_null(self._with_log_view(predicate), False).to_numpy(zero_copy_only=False))
            return rows, self.take(name, rows)
        order = np.argsort(pos, kind="stable")
        return pos[order], _whole(got.column(name)).take(pa.array(order))

    def computed(self, name: str, expr: str) -> pa.Array:
        """The SQL expression ``expr`` over each window row's log columns (one value per row, in
        window order), computed by DuckDB in its scan and not held: a value derived from a
        :data:`LENT` column (a JSON member of the metadata) never brings the column itself into
        Arrow. ``name`` names the result (not a log column)."""
        if self._log is None:
            return _whole(_over_table(self._table, f"SELECT {expr} AS {name} FROM t ORDER BY _row").column(0))
        if self._log.computed.get(name, expr) != expr:
            raise ValueError(f"computed({name!r}): already computed as {self._log.computed[name]!r}")
        self._log.computed[name] = expr
        return _whole(self._read([name]).column(name))

    def _with_log_view(self, predicate: str) -> pa.Array:
        """``predicate`` of each window row (matched by (ts, request_id)), NULL for none."""
        alias = "_where_" + hashlib.blake2b(predicate.encode(), digest_size=8).hexdigest()
        return self.computed(alias, f"({predicate})")

    def _ts_us(self) -> np.ndarray:
        return _us(self._table.column("ts"))

    def mapped(self, name: str, fn: Callable[[pa.Array], pa.Array | pa.ChunkedArray]) -> pa.Array:
        """``fn`` applied to column ``name``, one result per window row, in window order. A
        :data:`LENT` column is streamed from the log in batches and ``fn`` maps each batch, so
        a value derived from the bodies or the metadata (``json_extract``, a length) holds the
        derived values only, never the whole column. ``fn`` must map each value on its own
        (one result per input value, in order). Other columns are mapped whole."""

        def whole() -> pa.Array:  # the column read whole (held, or matched to the window by id)
            return _whole(fn(_whole(self._column(name))))

        if name in self._table.column_names or name not in LENT or self._log is None:
            return whole()
        inverse = None  # the window row of each scan row
        if self._order is not None:
            inverse = np.empty(len(self), np.int64)
            inverse[self._order.to_numpy()] = np.arange(len(self), dtype=np.int64)
        ids = self._table.column("request_id")
        results: list[pa.Array] = []
        at, aligned = 0, True
        batches = self._log.batches(["request_id", name])
        for batch in batches:
            n = batch.num_rows
            if at + n > len(self):  # rows logged since the window was read
                aligned = False
                break
            want = ids.slice(at, n) if inverse is None else ids.take(inverse[at : at + n])
            if not batch.column(0).equals(_whole(want)):  # another scan order
                aligned = False
                break
            out = _whole(fn(batch.column(1)))
            if len(out) != n:
                raise ValueError(f"mapped({name!r}): fn returned {len(out)} values for {n}")
            results.append(out)
            at += n
        del batches  # closes the scan's result: the connection runs one query at a time
        if not aligned or at != len(self) or not results:
            return whole()
        scanned = pa.concat_arrays(results)
        return scanned if self._order is None else scanned.take(self._order)

    def _realigned(self, names: list[str]) -> pa.Table:
        """``names`` matched to the window's rows by (ts, request_id); rows logged since are left out."""
        assert self._log is not None
        got = self._log.scan(["request_id", "ts", *names])
        ts_us = self._table.column("ts").cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
        b_ts = got.column("ts").cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
        pos = positions(ts_us, self._table.column("request_id").combine_chunks(), b_ts,
                         got.column("request_id").combine_chunks())  # fmt: skip
        back = np.full(self._table.num_rows, -1, np.int64)
        back[pos[pos >= 0]] = np.flatnonzero(pos >= 0)
        return got.select(names).take(pa.array(back, mask=back < 0))

    def _column(self, name: str) -> pa.ChunkedArray:
        """Column ``name`` as the log holds it (a column held as codes is decoded for the caller)."""
        col = self._held(name)
        if pa.types.is_dictionary(col.type):
            return pa.chunked_array([c.dictionary_decode() for c in col.chunks], col.type.value_type)
        return col

    def _held(self, name: str) -> pa.ChunkedArray:
        """Column ``name`` as the window holds it (read first if it is not held)."""
        if name not in self._table.column_names:
            if name not in self._names or name == "embedding":
                raise KeyError(name)
            if name in LENT and self._log is not None:  # read for this caller, not held
                return self._read([name]).column(name)
            self.prefetch([name])
        return self._table.column(name)

    # -- the dict-of-lists contract ---------------------------------------------------------
    def __missing__(self, name: str) -> list[Any]:
        if name == "embedding" and self._source is not None:
            value: list[Any] = self._embedding_list()
        elif name in self._names:
            value = self._column(name).to_pylist()
        else:
            raise KeyError(name)
        dict.__setitem__(self, name, value)
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._names or dict.__contains__(self, name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[name] if name in self else default  # noqa: SIM401 (dict.get skips __missing__)

    def __iter__(self) -> Iterator[str]:
        yield from self._names
        yield from (k for k in dict.keys(self) if k not in self._names)

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self)

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(k, self[k]) for k in self]

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[k] for k in self]

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"Window({len(self)} rows; columns {list(self._names)}; attached {list(dict.keys(self))})"

    @property
    def rows(self) -> int:
        return self._table.num_rows

    @property
    def table(self) -> pa.Table:
        """The columns read so far, as an Arrow table in window order (vectors: :meth:`embeddings`)."""
        return self._table

    @property
    def columns(self) -> tuple[str, ...]:
        """The log columns this window exposes (read when first used)."""
        return self._names

    # -- columns in bulk --------------------------------------------------------------------
    def arrow(self, name: str) -> pa.ChunkedArray:
        """A column as Arrow (NULL kept)."""
        return self._column(name)

    def numpy(self, name: str, keep: bool = True) -> np.ndarray:
        """A numeric or boolean column as float64, NaN for NULL (times: use :meth:`epoch`).
        ``keep=False``: not kept by the window unless it already was (a reader that frees it after
        its last use: the compiled fold's inputs)."""
        key = ("numpy", name)
        if key not in self._memo:
            col = self._column(name)
            if pa.types.is_timestamp(col.type):
                return self.epoch(name, keep)
            got = col.cast(pa.float64()).to_numpy()
            if not keep:
                return got  # type: ignore[no-any-return]
            self._memo[key] = got
        return self._memo[key]  # type: ignore[no-any-return]

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value derived from the window's columns, computed once (``compute()``) and shared
        by every caller (read it, do not mutate it)."""
        slot = ("memo", key)
        if slot not in self._memo:
            self._memo[slot] = compute()
        return self._memo[slot]

    def valid(self, name: str) -> np.ndarray:
        """True where a column is not NULL."""
        return pc.is_valid(self._held(name)).to_numpy()  # type: ignore[no-any-return]

    def epoch(self, name: str, keep: bool = True) -> np.ndarray:
        """A time column (TIMESTAMPTZ or epoch seconds) as float64 epoch seconds, NaN for NULL
        (``keep``: as :meth:`numpy`'s)."""
        key = ("epoch", name)
        if key not in self._memo:
            col = self._column(name)
            if pa.types.is_timestamp(col.type):
                got = col.cast(pa.timestamp("us", col.type.tz)).cast(pa.int64()).cast(pa.float64()).to_numpy() / 1e6
            else:
                got = col.cast(pa.float64()).to_numpy()
            if not keep:
                return got  # type: ignore[no-any-return]
            self._memo[key] = got
        return self._memo[key]  # type: ignore[no-any-return]

    def codes(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """A string column dictionary-encoded: (int32 code per row, -1 for NULL; the distinct
        values, in order of first appearance). A list column (``plan``) is coded by its
        elements joined with ``\\x1f``; decode with :func:`split_plan`."""
        key = ("codes", name)
        if key not in self._memo:
            col = self._held(name)
            if pa.types.is_null(col.type):  # a column the log predates
                return np.full(len(col), -1, np.int32), []
            whole = _whole(col)  # one kernel call, not one per chunk
            enc = whole if pa.types.is_dictionary(whole.type) else _joined(whole).dictionary_encode()
            codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            self._memo[key] = (codes, _joined(enc.dictionary).to_pylist())
        return self._memo[key]  # type: ignore[no-any-return]

    def embeddings(self, chunk_rows: int = EMBEDDING_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
        """The logged vectors: (float32 matrix, one row per request with a vector; the window row
        of each), read once in chunks of ``chunk_rows`` (no Python float per element)."""
        if self._matrix is None:
            if self._source is None or not len(self):
                self._matrix = (np.empty((0, 0), np.float32), np.empty(0, np.int64))
            else:
                ts_us = self._table.column("ts").cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
                rids = self._table.column("request_id").combine_chunks()
                # one scan thread: DuckDB's parallel scan of the vectors holds (and its allocator
                # keeps) a buffer per thread beside the matrix; the setting is put back after
                con = self._source.con
                threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0]) if con else 0
                try:
                    if con is not None:
                        con.execute("SET threads = 1")
                    self._matrix = self._source.read(ts_us, rids, chunk_rows)
                finally:
                    if con is not None:
                        con.execute(f"SET threads = {threads}")
                pa.default_memory_pool().release_unused()  # the batches' buffers, freed, back to the system
        return self._matrix

    def _embedding_list(self) -> list[np.ndarray | None]:
        """``window["embedding"]``: per row a float32 vector (a view into the matrix) or None."""
        matrix, rows = self.embeddings()
        out: list[np.ndarray | None] = [None] * len(self)
        for k, i in enumerate(rows.tolist()):
            out[i] = matrix[k]
        return out


PLAN_SEP = "\x1f"
_JSON_COLUMNS = frozenset({"metadata", "request_body", "response_body", "cache_features"})


def as_window(columns: Mapping[str, Any]) -> Window:
    """A window given as a dict of column lists (rows already in window order) as a
    :class:`Window`; a :class:`Window` as it is. Entries whose name starts with ``_`` stay
    attached; JSON values given as dicts or lists become JSON text, as the log returns them.
    The embedding vectors are not carried over (``embeddings()`` is empty)."""
    if isinstance(columns, Window):
        return columns
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if name.startswith("_") or name == "embedding":
            continue
        if name in _JSON_COLUMNS:
            values = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ValueError(f"column {name!r} cannot be read as one Arrow type: {exc}") from exc
    window = Window(None, pa.table(arrays), None, list(arrays), False)
    for name, value in columns.items():
        if name.startswith("_"):
            window[name] = value
    return window


def split_plan(joined: str | None) -> list[str] | None:
    """A plan coded by :meth:`Window.codes` back to its list of target ids."""
    if joined is None:
        return None
    return joined.split(PLAN_SEP) if joined else []


#: read the window's first scan through the columnar cache of sealed segments when the log allows
#: it (:mod:`.segment_cache`; ``LLMGW_REPLAY_CACHE=off`` turns it off too)
CACHE = True


def _from_segment_cache(
    con: duckdb.DuckDBPyConnection, head: list[str], since: Any, until: Any
) -> segment_cache.Head | None:
    from . import segment_cache

    cache = segment_cache.cache_for(con)
    return None if cache is None else segment_cache.load_head(con, cache, head, since, until)


def load_window(
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    where: str | None = None,
    params: Any = (),
    columns: Sequence[str] | None = None,
    prefetch: Sequence[str] = (),
) -> Window:
    """The logged requests of a window, oldest first (by ``ts``, then ``request_id``).

    ``where`` is an extra SQL predicate over the ``requests`` view (with ``?`` placeholders
    bound from ``params``): it selects a subset, e.g. one partition of a partitioned replay.
    ``columns`` (default :data:`LOG_COLUMNS`) are the columns the window exposes; each is
    read from the log when first used (``prefetch``: read these now, in one scan), through
    the same connection, which must stay open while the window is used. A column a log
    predates reads as NULL.
    """
    # what an earlier replay in this process freed (its result deleted, not trimmed: ~400 MB at 1M
    # rows) goes back to the system first — else this window's reads reuse it, resident
    release_memory()
    con: duckdb.DuckDBPyConnection = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type,assignment]
    where_sql, bound = _window_sql(since, until, where, params)
    present = {r[0] for r in con.execute("DESCRIBE requests").fetchall()}
    names = ["request_id", "ts", *(columns if columns is not None else LOG_COLUMNS)]
    source = _Log(con, where_sql, bound, present)
    head = [n for n in dict.fromkeys(["request_id", "ts", *prefetch]) if n in names and n not in LENT | {"embedding"}]
    cached = _from_segment_cache(con, head, since, until) if where is None and CACHE else None
    if cached is not None:  # the sealed segments' columns as the cache holds them (segment_cache.py)
        table, coded, order, segments = cached
        window = Window(source, table, order, names, "embedding" in names)
        window._memo.update({("codes", name): c for name, c in coded.items()})
        window._segments = segments
        return window
    scanned = source.scan(head)
    order = pc.sort_indices(scanned.select(["ts", "request_id"]), [("ts", "ascending"), ("request_id", "ascending")])
    idx = order.to_numpy()
    identity = bool(np.array_equal(idx, np.arange(len(idx), dtype=idx.dtype)))
    table, coded = _compact(scanned if identity else _permuted(scanned, order), scanned=True)  # in window order
    del scanned
    release_memory()
    window = Window(source, table, None if identity else order, names, "embedding" in names)
    window._memo.update({("codes", name): c for name, c in coded.items()})
    return window
