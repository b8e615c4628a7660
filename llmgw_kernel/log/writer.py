"""The request-log writer: journaled, batched, off the event loop.

The proxy calls :meth:`LogWriter.append` before a response's last byte is sent: one framed
record appended to the write-ahead journal (:mod:`.journal`, one ``os.write``) and a list
append. A writer thread wakes every ``flush_ms``, turns buffered records into rows, writes
them as one Parquet segment through DuckDB (which works with the GIL released), fsyncs it,
renames it into place and deletes the journal file those records came from. Every
``FANOUT`` segments of the same size class are merged into one (an LSM-style compaction),
so a day of traffic stays a few dozen files. ``close()`` flushes everything; after a
``kill -9`` the next start folds what the journal holds into a segment, so an answered
request is never lost.

``worker_process=True`` (the server's writer) moves that work out of the proxy's process: the
writer thread only hands each flush's journal frames to a child process
(:mod:`.segment_worker`), which builds and writes the segments and runs the compactor, so
neither holds the proxy's GIL (a thread holding it while the OS has pre-empted it stalls the
event loop; docs/benchmarks.md "Log writer and the event loop").

One bad row never blocks the others: rows are serialised one by one (a value that cannot be
serialised becomes a marker, :func:`.record.encode_row`), and a batch that fails for a reason
other than the disk is split until the bad row is found, which is then written with its
scalar columns only.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from ..durable import fsync_path
from . import journal as wal
from . import segments as seg_layout
from .record import RequestRecord, encode_row, minimal_row, to_row, unserializable
from .schema import COLUMNS, TS_MAX, TS_MIN, time_error
from .segment_worker import WorkerProcess, wait_for_worker
from .segments import (
    ANCHOR_NAME,
    Segment,
    _sql_path,
    ensure_anchor,
    ensure_columns,
    list_segments,
    log_dir,
    segment_name,
    split_live,
)

log = logging.getLogger("llmgw.log")

FANOUT = 16  # segments of one size class merged at a time
#: how segments are written: a row group is at most 64 MB in memory, not DuckDB's 122,880 rows
#: whatever their size — a merge holds one row group in the writer's 256 MB, so ~4,000 rows of
#: ~40 KB (long names, logged bodies) made every compaction pass fail out of memory, retried for good
_PARQUET = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '64MB'"
GRACE_S = 30.0  # a superseded segment outlives the moment readers stop reading it by this much
MAX_BUFFERED = 1_000_000  # rows kept in memory while the disk refuses writes
ENCODE_CHUNK = 32  # rows encoded between two GIL hand-overs (see encode_records; ~2.5 ms at 4 KB bodies)
FAILURE_LOG_S = 60.0  # while flushes keep failing, at most one log line per this many seconds
#: a merge that failed is tried again after the first, doubling up to the second (seconds)
MERGE_RETRY_S = (2.0, 600.0)

_JSON_COLUMNS = {name: ("DOUBLE" if typ == "TIMESTAMPTZ" else typ) for name, typ, _ in COLUMNS}
_SELECT = ", ".join(
    f'to_timestamp("{name}") AS "{name}"' if typ == "TIMESTAMPTZ" else f'"{name}"' for name, typ, _ in COLUMNS
)
_SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "VARCHAR": str,
    "INTEGER": int,
    "BIGINT": int,
    "DOUBLE": (int, float),
    "BOOLEAN": bool,
}
_SCALAR_TYPES["TIMESTAMPTZ"] = (int, float)


class LogWriter:
    """Append-only writer of ``<data_dir>/log/requests``. Thread-safe ``append``.

    ``journal=False`` skips the write-ahead journal (bulk writers that can rerun, e.g. synthetic
    history); the server always journals. ``replica`` names this writer's own series of
    segments and journal when several processes share the data directory (each claims a
    distinct id: :func:`llmgw_kernel.datadir.claim_replica`); it numbers, merges, recovers and
    deletes only its own files. ``worker_process`` writes segments and merges them in a child
    process (:mod:`.segment_worker`) instead of this process's threads.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        flush_ms: int = 500,
        journal: bool = True,
        on_flush: Callable[[list[RequestRecord]], None] | None = None,
        replica: str | None = None,
        worker_process: bool = False,
    ) -> None:
        import duckdb

        self.replica = replica or ""
        segment_name(0, 0, self.replica)  # an invalid id fails here, before anything is written
        self.directory = log_dir(data_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        if journal:  # before recovering the journal: a killed server's worker may still be writing
            wait_for_worker(self.directory, self.replica)
        _remove_stale_temporaries(self.directory, self.replica)
        ensure_anchor(self.directory)
        ensure_columns(self.directory)  # readers take every segment's schema from the anchor
        self.flush_s = flush_ms / 1000
        self.on_flush = on_flush  # called with each flush's records, in the writer thread (access logs)
        self._buffer: list[RequestRecord] = []
        self._frames: list[bytes] = []  # worker_process: the journal frames of _buffer's records
        # rows not yet in a segment: JSON lines, or journal frames for the worker process
        self._pending: list[bytes] = []
        self._lock = threading.Lock()  # one flush or close at a time
        self._merge_lock = threading.Lock()  # one compaction pass at a time (its own thread)
        self._merge_retries = _MergeRetries()
        self._append_lock = threading.Lock()  # journal + buffer move together
        self._wake = threading.Event()
        self._stop = False
        self._seq = max((s.hi for s in self._own_segments()), default=0) + 1
        self._con = duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
        self._con.execute("SET TimeZone = 'UTC'")
        self._merge_con = None if worker_process else duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
        self.rows_written = 0
        self.rows_recovered = 0
        self.rows_stripped = 0  # rows written with their scalar columns only (see _strip)
        self.flush_errors = 0
        self._flush_error: str | None = None  # why the last flush failed, until one works again
        # the last failure even once healed (a stopped worker is replaced within a second):
        # (reason, time.time()) for /health, None if no flush has failed since the start
        self.last_failure: tuple[str, float] | None = None
        self._failures = _FailureLog()
        self.last_flush_at = time.time()
        self._done_journals: list[Path] = []  # journal files whose records are in _pending or written
        self._journal: wal.Journal | None = None
        if journal:
            jdir = wal.journal_dir(data_dir, self.replica)
            with self._lock:
                self._recover(jdir)
            self._journal = wal.Journal(jdir, self._seq)
        self._flushed = threading.Event()  # wakes the compactor after a flush wrote a segment
        self._worker: WorkerProcess | None = None
        self._worker_process = worker_process
        if worker_process:
            self._worker = WorkerProcess(Path(data_dir), self.replica, flush_ms)
        self._thread = threading.Thread(target=self._run, name="llmgw-log-writer", daemon=True)
        self._thread.start()
        # merges run beside the flushes: a long merge never delays the rows of the next flush
        self._compactor = threading.Thread(target=self._run_compactor, name="llmgw-log-compactor", daemon=True)
        if not worker_process:
            self._compactor.start()

    def _own_segments(self) -> list[Segment]:
        """This writer's series (other replicas' segments are theirs to number and merge)."""
        return seg_layout.series(list_segments(self.directory), self.replica)

    # -- hot path -----------------------------------------------------------------------
    def append(self, record: RequestRecord) -> None:
        """Journal ``record`` (one ``os.write``) and buffer it for the next flush. Call it once
        the record is final: before the response's last byte, so that a crash after the
        client has its answer cannot lose the row.

        Raises ValueError, before journaling anything, for a record whose ``ts`` or ``ts_end``
        is not a time a row can hold (:func:`.schema.time_error`): such a row would make
        every flush fail and hold the rows buffered with it."""
        why = time_error(record.ts) or (time_error(record.ts_end, "ts_end") if record.ts_end is not None else None)
        if why is not None:
            raise ValueError(f"request {record.request_id}: {why}")
        journal = self._journal
        if journal is None and not self._worker_process:
            self._buffer.append(record)  # list.append is atomic under the GIL
            return
        frame = wal.encode(record)
        with self._append_lock:
            if journal is not None:
                journal.append(frame)
            self._buffer.append(record)
            if self._worker_process:
                self._frames.append(frame)

    # -- lifecycle ------------------------------------------------------------------------
    def set_flush_ms(self, flush_ms: int) -> None:
        self.flush_s = flush_ms / 1000

    def flush(self) -> None:
        """Write everything buffered now (blocking; callable from any thread)."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush what is buffered, stop the threads and the worker, close the journal. Bounded:
        with a worker (the server's), the writer thread's running flush (at most its answer
        deadline, :func:`.segment_worker.answer_deadline_s`), one last flush (the same deadline)
        and the worker's exit (its running merge, at most ``EXIT_WAIT_S``, then it is killed).
        Rows a flush could not write stay in the journal for the next start. An in-process
        writer waits for DuckDB's write, which a hung disk can hold."""
        self._stop = True
        self._wake.set()
        self._flushed.set()
        self._thread.join(timeout=30)
        if self._compactor.is_alive():
            self._compactor.join(timeout=60)
        with self._merge_lock:
            if self._merge_con is not None:
                self._merge_con.close()
        with self._lock:
            self._flush_locked()
            if self._worker is not None:
                self._worker.close()
                self._worker = None
            self._con.close()
            if self._journal is not None:
                self._done_journals.append(self._journal.close())
                self._journal = None
                if not self._pending and not self._buffer:
                    self._delete_journals()

    @property
    def last_error(self) -> str | None:
        """Why rows are not safe right now: the last flush failed, or the journal cannot be
        written (rows still reach segments, but a crash would lose the unflushed ones)."""
        if self._flush_error is not None:
            return self._flush_error
        journal = self._journal
        return f"journal: {journal.last_error}" if journal is not None and journal.last_error else None

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    @property
    def buffered(self) -> int:
        return len(self._buffer) + len(self._pending)

    @property
    def journal_errors(self) -> int:
        return self._journal.errors if self._journal is not None else 0

    # -- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        next_at = time.monotonic() + self.flush_s
        while not self._stop:
            # a fixed cadence: the time a flush takes is not added to the wait for the next one
            self._wake.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + self.flush_s, time.monotonic())
            if self._stop:
                break
            with self._lock:
                try:
                    written = self.rows_written
                    self._flush_locked()
                    if self.rows_written != written:
                        self._flushed.set()
                except Exception:  # keep the thread alive whatever happens
                    log.exception("log writer pass failed")

    def _run_compactor(self) -> None:
        while not self._stop:
            self._flushed.wait(max(self.flush_s, 1.0))  # also collects garbage when idle
            self._flushed.clear()
            if self._stop:
                break
            with self._merge_lock:
                try:
                    self._compact_locked()
                    self._collect_garbage()
                except Exception:  # keep the thread alive whatever happens
                    log.exception("log compaction pass failed")

    def _flush_locked(self) -> None:
        with self._append_lock:
            records, self._buffer = self._buffer, []
            frames, self._frames = self._frames, []
            # a journal that could not start its next file retries at every flush, records or not
            if self._journal is not None and (records or self._journal.stuck):
                self._done_journals.append(self._journal.rotate(self._seq))
        self._pending.extend(frames if self._worker_process else encode_records(records))
        if records and self.on_flush is not None:
            try:
                self.on_flush(records)
            except Exception:  # a log handler's failure never stops the request log
                log.exception("log: on_flush failed")
        if self._pending:
            try:
                self._send_pending() if self._worker_process else self._write_pending()
            except Exception as exc:
                self._flush_failed(exc, "log flush failed")
                if len(self._pending) > MAX_BUFFERED:
                    dropped = len(self._pending) - MAX_BUFFERED
                    del self._pending[:dropped]
                    log.error("log buffer full: dropped %d oldest rows", dropped)
                return
            self._flush_error = None
            self._failures.succeeded()
            self.last_flush_at = time.time()
        self._delete_journals()

    def _flush_failed(self, exc: Exception, what: str) -> None:
        """Count a failed write of ``_pending`` (``llmgw_log_flush_errors``) and keep its reason for
        ``/health``; the log line is throttled by :class:`_FailureLog`."""
        self.flush_errors += 1
        self._flush_error = f"{type(exc).__name__}: {exc}"
        self.last_failure = (self._flush_error, time.time())
        self._failures.failed(what, len(self._pending), self._flush_error)

    def _write_pending(self) -> None:
        """Write ``_pending`` as segments: one if it can, else split around rows that fail for
        a reason other than the disk. A disk error leaves what was not written in ``_pending``."""
        chunks = [self._pending]
        while chunks:
            chunk = chunks.pop(0)
            try:
                self._write_segment(chunk, self._seq)
            except Exception as exc:
                if _disk_error(exc):
                    self._pending = [line for c in (chunk, *chunks) for line in c]
                    raise
                if len(chunk) > 1:
                    mid = len(chunk) // 2
                    chunks[0:0] = [chunk[:mid], chunk[mid:]]
                    continue
                chunk = [_strip(chunk[0], exc)]
                try:
                    self._write_segment(chunk, self._seq)
                except Exception:
                    self._pending = [line for c in (chunk, *chunks) for line in c]
                    raise
                self.rows_stripped += 1
                log.error("log row written with its scalar columns only: %s", exc)
            self._seq += 1
            self.rows_written += len(chunk)
        self._pending = []

    def _send_pending(self) -> None:
        """Have the worker process write ``_pending`` (journal frames) as segments; what it did
        not write stays in ``_pending``. A worker that died is replaced (and the frames sent to
        the new one at the next flush)."""
        if self._worker is None:
            self._worker = WorkerProcess(self.directory.parent.parent, self.replica, round(self.flush_s * 1000))
        try:
            reply = self._worker.write(self._pending)
        except OSError:
            self._worker.kill()
            self._worker = None
            raise
        self._seq = reply["seq"]
        self.rows_written += reply["written"]
        self.rows_stripped += reply["stripped"]
        del self._pending[: reply["written"]]
        if reply["error"] is not None:
            raise LogWorkerError(reply["error"])

    def _delete_journals(self) -> None:
        for path in self._done_journals:
            path.unlink(missing_ok=True)
        self._done_journals = []

    def _recover(self, jdir: Path) -> None:
        """Fold what a crash left in the journal into a segment, skipping records a segment
        already holds (the crash came between writing it and deleting the journal file)."""
        files = wal.journal_files(jdir)
        if not files:
            return
        records: list[RequestRecord] = []
        for _, path in files:
            found, torn = wal.decode(path.read_bytes())
            if torn:
                log.warning("journal %s: skipped %d bytes of a torn or corrupt last record", path.name, torn)
            records.extend(found)
        known = self._ids_since(min(seq for seq, _ in files))
        fresh = []
        for rec in records:
            if rec.request_id not in known:
                known.add(rec.request_id)
                fresh.append(rec)
        self._done_journals = [path for _, path in files]
        self._pending = encode_records(fresh)
        if self._pending:
            try:
                self._write_pending()
            except Exception as exc:  # the thread retries; the journal stays until it succeeds
                self._flush_failed(exc, "journal recovery could not write its rows")
                return
        self.rows_recovered = len(fresh)
        if fresh:
            log.warning("journal: recovered %d rows a crash had not written to a segment", len(fresh))
        self._delete_journals()

    def _ids_since(self, seq: int) -> set[str]:
        files = [str(s.path) for s in self._own_segments() if s.hi >= seq and s.lo > 0]
        if not files:
            return set()
        rows = self._con.execute("SELECT request_id FROM read_parquet(?, union_by_name=true)", [files]).fetchall()
        return {r[0] for r in rows}

    def _write_segment(self, lines: list[bytes], seq: int) -> None:
        final = self.directory / segment_name(seq, seq, self.replica)
        jsonl = self.directory / f".{final.name}.jsonl.tmp"
        tmp = self.directory / f".{final.name}.tmp"
        with open(jsonl, "wb") as fh:
            fh.write(b"\n".join(lines))
        try:
            self._con.execute(
                f"COPY (SELECT {_SELECT} FROM read_json(?, format='newline_delimited', columns=?)) "
                f"TO '{_sql_path(tmp)}' ({_PARQUET})",
                [str(jsonl), _JSON_COLUMNS],
            )
            fsync_path(tmp)
            os.replace(tmp, final)
        finally:
            jsonl.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)

    def _compact_locked(self) -> None:
        """Merge every full run of ``FANOUT`` segments of a size class. A run whose merge fails
        (a full disk, a damaged segment) waits before it is tried again (:class:`_MergeRetries`)
        and never holds back the other runs, nor the deletion of superseded segments."""
        live, _ = split_live([s for s in self._own_segments() if s.lo > 0])
        by_class: dict[int, list[Segment]] = {}
        for s in live:
            by_class.setdefault(_size_class(s.span), []).append(s)
        runs = [g[start : start + FANOUT] for g in by_class.values() for start in range(0, len(g) - FANOUT + 1, FANOUT)]
        retries = self._merge_retries
        retries.keep({(run[0].lo, run[-1].hi) for run in runs})
        for run in runs:
            span = (run[0].lo, run[-1].hi)
            if not retries.due(span):
                continue
            try:
                self._merge(run)
            except Exception as exc:
                retries.failed(span, exc)
            else:
                retries.succeeded(span)

    def _merge(self, group: list[Segment]) -> None:
        assert self._merge_con is not None  # merges run in the process that writes the segments
        # Rows keep the segments' order (flush order, i.e. time order to within a request's
        # latency); readers sort. An ORDER BY ts here made DuckDB materialise and sort the
        # whole run: ~30 MB more peak RSS per level-0 merge at ~3000 req/s.
        lo, hi = group[0].lo, max(s.hi for s in group)
        final = self.directory / segment_name(lo, hi, self.replica)
        tmp = self.directory / f".{final.name}.tmp"
        files = [str(s.path) for s in group]
        try:
            self._merge_con.execute(
                f"COPY (SELECT * FROM read_parquet(?, union_by_name=true)) TO '{_sql_path(tmp)}' ({_PARQUET})",
                [files],
            )
            fsync_path(tmp)
            os.utime(tmp)  # its mtime is when it appeared: readers switch to it MATURE_S later
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _collect_garbage(self) -> None:
        segments = self._own_segments()
        _, superseded = split_live(segments)
        now = time.time()
        for s in superseded:
            covering = [o for o in segments if o.lo <= s.lo and s.hi <= o.hi and o.span > s.span]
            try:
                if all(now - o.path.stat().st_mtime > seg_layout.MATURE_S + GRACE_S for o in covering):
                    s.path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue


class LogWorkerError(RuntimeError):
    """The worker process could not write some rows (why, as it reported)."""


STALE_TMP_S = 3600.0  # another process's temporary file this old is a crash's leftover
_WRITER_TMP_RE = re.compile(r"^\.(seg-.*\.parquet)(?:\.jsonl)?\.tmp$")  # what _write_segment and _merge leave


def _remove_stale_temporaries(directory: Path, replica: str) -> None:
    """Delete the temporary files a crash of this writer left (a flush's or a merge's:
    ``.<segment of its series>.tmp`` / ``.jsonl.tmp``), and any other one older than
    ``STALE_TMP_S``: another replica, or ``open_log`` in another process, may be writing its own."""
    now = time.time()
    for stale in directory.glob(".*.tmp"):
        m = _WRITER_TMP_RE.match(stale.name)
        try:
            mine = m is not None and Segment(0, 0, Path(m.group(1))).replica == replica and m.group(1) != ANCHOR_NAME
            if mine or now - stale.stat().st_mtime > STALE_TMP_S:
                stale.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


def _size_class(span: int) -> int:
    """0 for 1..FANOUT-1 flushes, 1 for FANOUT..FANOUT²-1, ..."""
    level = 0
    while span >= FANOUT:
        span //= FANOUT
        level += 1
    return level


def _yield_gil() -> None:
    """Hand the GIL over to a thread waiting for it (the event loop), and the CPU too.

    ``sched_yield`` runs with the GIL released, so a waiting thread takes the GIL at once rather
    than after the 5 ms switch interval; and the writer gives up its CPU slice, so the OS does
    not deschedule it later while it holds the GIL. Costs ~1 µs when nobody waits."""
    os.sched_yield()


def encode_records(records: list[RequestRecord]) -> list[bytes]:
    """The records' JSON lines, encoded ``ENCODE_CHUNK`` rows at a time with the GIL handed over
    between chunks: a flush of 1,000 rows with 4 KB bodies is ~75 ms of GIL-holding CPU, and
    encoded in one go it made the proxy's event loop wait in GIL convoys (each of the loop's
    GIL releases, a socket call, costs up to the switch interval to get back) or for the whole
    slice when the OS descheduled the writer mid-hold (docs/benchmarks.md "Log writer and the
    event loop")."""
    lines: list[bytes] = []
    for start in range(0, len(records), ENCODE_CHUNK):
        if start:
            _yield_gil()
        lines.extend(_line(rec) for rec in records[start : start + ENCODE_CHUNK])
    return lines


def _line(rec: RequestRecord) -> bytes:
    """A record's row as a JSON line; never raises (a record whose row cannot be built keeps
    its scalar facts, :func:`.record.minimal_row`)."""
    try:
        return encode_row(to_row(rec))
    except Exception as exc:
        log.exception("request %s: full log row failed; writing its scalar columns", rec.request_id)
        return encode_row(minimal_row(rec, f"{type(exc).__name__}: {exc}"))


def _strip(line: bytes, exc: BaseException) -> bytes:
    """A row that DuckDB refused, reduced to the scalar columns whose values have their
    column's type and range (a time outside :data:`.schema.TS_MIN` .. ``TS_MAX`` is NULL, so a
    record that bypassed :meth:`LogWriter.append`'s check, e.g. from an older journal, is still
    written); ``metadata`` says why."""
    row = orjson.loads(line)
    out: dict[str, object] = {}
    for name, typ, _ in COLUMNS:
        value = row.get(name)
        kind = _SCALAR_TYPES.get(typ)
        ok = kind is not None and isinstance(value, kind) and (typ == "BOOLEAN" or not isinstance(value, bool))
        if ok and typ == "TIMESTAMPTZ":
            ok = TS_MIN <= value < TS_MAX  # type: ignore[operator]
        if ok and typ in ("INTEGER", "BIGINT"):
            ok = -(2**31) <= value < 2**31 if typ == "INTEGER" else -(2**63) <= value < 2**63  # type: ignore[operator]
        if ok and isinstance(value, str):
            ok = len(value) <= 100_000
        out[name] = value if ok else None
    out["metadata"] = unserializable(f"row refused by the segment writer: {type(exc).__name__}: {exc}")
    # derived from the metadata and body just dropped: replay reads the JSON these came from instead
    out["cache_team"] = out["exact_key"] = None
    return orjson.dumps(out)


class _FailureLog:
    """The log lines of a run of failed flushes: the first failure, then at most one line per
    ``FAILURE_LOG_S`` with the count since the last line (a full disk fails every flush, i.e.
    every 100 ms), and one line when a flush succeeds again."""

    def __init__(self) -> None:
        self.run = 0  # failures since the last success
        self.unlogged = 0  # failures since the last line
        self.logged_at = 0.0

    def failed(self, what: str, rows: int, error: str) -> None:
        self.run += 1
        now = time.monotonic()
        if self.run == 1:
            log.error("%s (%d rows kept in memory): %s", what, rows, error)
        else:
            self.unlogged += 1
            if now - self.logged_at < FAILURE_LOG_S:
                return
            log.error("log flush still failing (%d failures, %d rows kept in memory): %s", self.unlogged, rows, error)
        self.unlogged = 0
        self.logged_at = now

    def succeeded(self) -> None:
        if self.run:
            log.info("log flush works again after %d failed flushes", self.run)
        self.run = self.unlogged = 0


class _MergeRetries:
    """When each run of segments whose merge failed may be tried again: after
    ``MERGE_RETRY_S[0]`` seconds, doubling up to ``MERGE_RETRY_S[1]``, one log line per failure
    (the first with its traceback). A merge that fails for good (a damaged segment) costs a
    merge attempt every ten minutes, not one per compaction pass. Keyed by the run's first and
    last segment: entries of runs that no longer exist are dropped at each pass (bounded)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[int, int], tuple[float, float, int]] = {}  # span -> (next try, wait, failures)

    def due(self, span: tuple[int, int]) -> bool:
        entry = self._runs.get(span)
        return entry is None or time.monotonic() >= entry[0]

    def failed(self, span: tuple[int, int], exc: BaseException) -> None:
        _, wait, failures = self._runs.get(span, (0.0, MERGE_RETRY_S[0] / 2, 0))
        wait = min(wait * 2, MERGE_RETRY_S[1])
        self._runs[span] = (time.monotonic() + wait, wait, failures + 1)
        log.error(
            "log merge of segments %d-%d failed (%d in a row), next try in %.0f s: %s: %s",
            *span, failures + 1, wait, type(exc).__name__, exc, exc_info=exc if not failures else None,
        )  # fmt: skip

    def succeeded(self, span: tuple[int, int]) -> None:
        entry = self._runs.pop(span, None)
        if entry is not None:
            log.info("log merge of segments %d-%d worked after %d failures", *span, entry[2])

    def keep(self, spans: set[tuple[int, int]]) -> None:
        for span in [s for s in self._runs if s not in spans]:
            del self._runs[span]


def _disk_error(exc: BaseException) -> bool:
    """A failure of the disk or the directory (keep the rows and retry), not of a row."""
    import duckdb

    return isinstance(exc, (OSError, duckdb.IOException))
