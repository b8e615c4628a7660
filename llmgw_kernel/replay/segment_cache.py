"""A columnar replay cache of sealed log segments: the columns a replay reads, per segment, coded.

Analysts replay the same recent window again and again while they tune a policy. Each replay
read the window's ~20 columns from Parquet through DuckDB (≈ 0.6 CPU s per million rows) and
dictionary-coded its few-valued strings (≈ 0.2 s) — work whose result depends only on the
segment, and segments never change once they are renamed into place (docs/log.md). So the first
replay that reads a segment stores its columns beside the log, each as an uncompressed Arrow IPC
file, strings of few values as int32 codes with their dictionary, and later replays memory-map
them instead:

    <data-dir>/replay-cache/<segment name>.<size>.<mtime ns>.<inode>.<anchor>.arrow

- **Identity.** An entry is the segment's name with its size, modification time and inode: a
  segment rewritten in place (``segments.ensure_columns``: a new file renamed over the old one)
  or a name reused is another entry, and so is every entry once the anchor segment (the schema)
  is rewritten; a column stored with another SQL expression than the window's now is read again.
- **Integrity.** Beside each entry, ``<entry>.sums`` names the entry, its row count and a CRC-32
  of each column's buffers as they were written; a column is used only when its CRC matches (a
  column not read is not checked). An entry copied over another's name, scribbled on (a torn page,
  a bad disk) or without its sums is read from Parquet again and rewritten — never a wrong answer.
  A column found sound is not summed again while its file keeps its identity (device, inode, size,
  modification and change time): in this process, and in later ones through :data:`VERIFIED` — a
  write through the file system changes the change time; damage without a write (bit rot after the
  check) is not caught then, as it is not in the log's own Parquet (docs/replay.md).
  Entries of segments no longer in the directory (merged away and deleted) are removed by the next
  replay.
- **Visibility.** Which segments a window reads is decided by the view's own rule
  (:func:`~llmgw_kernel.log.segments.visible` of the directory's listing, now), so a merge between
  two replays is picked up like the view picks it up: each row read exactly once.
- **The live tail.** Segments smaller than :data:`MIN_BYTES` (recent flushes, merged soon) are
  read from Parquet each time, one query per segment, and never stored.
- **Scan order.** Segments are read in name order and each in file order — the order DuckDB scans
  the view in — so the window's later scans of other columns line up with it row for row (a
  mismatch is caught and matched by id: slower, never wrong).
- **Bit-identical.** Each column is read with the window's own expression over the segment with the
  anchor's schema (``read_parquet([anchor, segment])``, as the view binds it); a window's codes
  are renumbered in order of first appearance, as :meth:`pyarrow.Array.dictionary_encode` numbers
  them. ``tests/replay/test_segment_cache.py`` replays with and without the cache and compares the
  decisions and summary.

Not used for a window with a ``where`` predicate (any SQL: read through the view), for a
connection whose view reads several data directories, or when ``LLMGW_REPLAY_CACHE=off``.
``LLMGW_REPLAY_CACHE=<dir>`` puts the cache elsewhere (a read-only data directory); a cache that
cannot be written is skipped (the segment is read from Parquet).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..durable import write_atomic
from ..log.reader import data_dir_of
from ..log.segments import (
    ANCHOR_NAME,
    REPLAY_CACHE_DIR,
    REPLAY_CACHE_ENV,
    _sql_path,
    derived_dir,
    listing,
    log_dir,
    visible,
)
from .window_codes import coded_column, dictionary_values, moved_runs

if TYPE_CHECKING:
    import duckdb

#: segments smaller than this are the live tail: read from Parquet each time, not stored
MIN_BYTES = 1 << 20
CACHE_DIR = REPLAY_CACHE_DIR  # one place for both: log.segments keeps its memo of footers there
ENV = REPLAY_CACHE_ENV
_CODED_META = b"llmgw_values"  # a coded column's dictionary (JSON list), in its file's schema metadata
_TYPE_META = b"llmgw_type"  # a coded column's own type (a serialized schema), in the same metadata
_EXPR_META = b"llmgw_expr"  # the SQL each column was read with: a column read otherwise since is read again
SUMS = ".sums"  # an entry's sidecar: its name, rows and each column's CRC-32 (JSON)
#: the columns of entries checked against their sums, by entry file identity (JSON), across processes
VERIFIED = "verified-sums.json"


def cache_root(data_dir: Path) -> Path | None:
    """Where the cache of ``data_dir``'s log lives (None: turned off)."""
    return derived_dir(data_dir, ENV, CACHE_DIR)


def log_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The one data directory whose log ``con``'s ``requests`` view reads (None: another view,
    or several directories)."""
    root = data_dir_of(con)
    if root is None:
        return None
    try:
        row = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'requests'").fetchall()
    except Exception:
        return None
    # the view names the directory as open_log was given it, llmgw_data_dir() resolved: a data
    # directory reached through a symlink (a mounted volume's link) is the same log
    found = _VIEW_GLOB.search(row[0][0]) if row else None
    if found is None:  # several directories, or another view
        return None
    glob = Path(found.group(1).replace("''", "'"))
    if glob.name != "seg-*.parquet" or glob.parent.resolve() != log_dir(root).resolve():
        return None
    return root


_VIEW_GLOB = re.compile(r"read_parquet\(list_value\('((?:[^']|'')*)'\),")


@dataclass
class Piece:
    """One column of one segment: plain (``array``), or coded (``codes``, -1 for NULL, into ``values``)."""

    array: pa.Array | None = None
    codes: np.ndarray | None = None
    values: list[Any] = field(default_factory=list)
    type: pa.DataType | None = None  # a coded column's own type (string, or a list of strings)
    whole: bool = True  # every row of the segment (no bound of the window cut it)


def codable(typ: pa.DataType) -> bool:
    """A string or list-of-strings type (the types :func:`.window._worth_coding` considers)."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        typ = typ.value_type
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


#: never coded: one value per row
PLAIN = frozenset({"request_id", "ts"})


def _piece(name: str, col: pa.Array) -> Piece:
    """A segment's column as the cache holds it: coded when it is a string column of few distinct
    values in this segment (the window's own rule, :data:`.window.CODED_MAX_SHARE`), else plain."""
    from .window import CODED_MAX_SHARE

    if name in PLAIN or not codable(col.type):
        return Piece(array=col)
    piece = _coded(col)
    valid = int(np.count_nonzero(piece.codes >= 0))  # type: ignore[operator]
    return piece if len(piece.values) <= CODED_MAX_SHARE * max(valid, 1) else Piece(array=col)


def _coded(col: pa.Array) -> Piece:
    from .window import _joined

    enc = _joined(col).dictionary_encode()
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    return Piece(codes=codes, values=enc.dictionary.to_pylist(), type=col.type)


def _write(path: Path, pieces: dict[str, Piece]) -> None:
    """A segment's columns as one IPC file, written atomically: a coded column as its int32 codes,
    its dictionary and own type in the field's metadata."""
    fields, arrays = [], []
    for name, piece in pieces.items():
        if piece.codes is not None:
            assert piece.type is not None
            meta = {
                _CODED_META: orjson.dumps(piece.values),
                _TYPE_META: pa.schema([("t", piece.type)]).serialize().to_pybytes(),
                _EXPR_META: _expression(name).encode(),
            }
            fields.append(pa.field(name, pa.int32(), metadata=meta))
            arrays.append(pa.array(piece.codes, pa.int32()))
        else:
            assert piece.array is not None
            fields.append(pa.field(name, piece.array.type, metadata={_EXPR_META: _expression(name).encode()}))
            arrays.append(piece.array)
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    sums_tmp = None
    try:
        os.fchmod(fd, 0o644)  # readable by the other analysts' replays, like the log
        with os.fdopen(fd, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        with pa.memory_map(tmp) as source:  # the CRCs of the buffers a read will see
            written = pa.ipc.open_file(source).read_all()
            sums = {"entry": path.name, "rows": written.num_rows, "crc": {c: _crc(written[c]) for c in pieces}}
        fd, sums_tmp = tempfile.mkstemp(prefix=f".{path.name}{SUMS}.", dir=path.parent)
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(sums))
        os.replace(sums_tmp, _sums_path(path))  # the new sums first: a crash between leaves a mismatch
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        if sums_tmp is not None:
            Path(sums_tmp).unlink(missing_ok=True)
        raise


def _sums_path(path: Path) -> Path:
    return path.with_name(path.name + SUMS)


def _crc(col: pa.ChunkedArray) -> int:
    crc = 0
    for chunk in col.chunks:
        for buf in chunk.buffers():
            if buf is not None:
                crc = zlib.crc32(buf, crc)
    return crc


def _read(
    path: Path, names: Sequence[str] | None = None, sound: set[tuple[Any, ...]] | None = None
) -> dict[str, Piece]:
    """A segment's file, memory-mapped (the arrays are views of the file's pages): its columns
    ``names`` (default: all) whose CRC matches the entry's sums. Raises pa.ArrowInvalid when the
    sums are missing or name another entry or row count (every column is then read again).
    ``sound``: the (entry, column, file identity) already checked by this cache's earlier reads
    of the same file (a replay reads ``request_id`` and ``ts`` in each of its scans): not
    checked again — a file replaced since is another identity (entries are renamed into place)."""
    try:
        sums = orjson.loads(_sums_path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise pa.ArrowInvalid(f"{path.name}: no sums ({exc})") from exc
    before = _identity(path)
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    if sound is not None and _identity(path) != before:  # replaced while it was mapped: check every column
        sound = None
    if not isinstance(sums, dict) or sums.get("entry") != path.name or sums.get("rows") != table.num_rows:
        raise pa.ArrowInvalid(f"{path.name}: its sums are another entry's")
    crc = sums.get("crc")
    crcs: dict[str, Any] = crc if isinstance(crc, dict) else {}
    out = {}
    for f, col in zip(table.schema, table.columns, strict=True):
        if names is not None and f.name not in names:
            continue
        meta = f.metadata or {}
        if meta.get(_EXPR_META) != _expression(f.name).encode():  # read by another rule: read it again
            continue
        checked = (path.name, f.name, crcs.get(f.name), *before)
        if sound is None or checked not in sound:
            if crcs.get(f.name) != _crc(col):  # damaged since it was written: read it again
                continue
            if sound is not None:
                sound.add(checked)
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        if _CODED_META in meta:
            typ = pa.ipc.read_schema(pa.py_buffer(meta[_TYPE_META])).field(0).type
            codes = arr.to_numpy() if len(arr) else np.empty(0, np.int32)
            out[f.name] = Piece(codes=codes, values=orjson.loads(meta[_CODED_META]), type=typ)
        else:
            out[f.name] = Piece(array=arr)
    return _plain_apart(path, before, out)


def _plain_apart(path: Path, before: tuple[int, int, int, int, int], pieces: dict[str, Piece]) -> dict[str, Piece]:
    """``pieces`` with their plain columns taken from a second mapping of the same file: a window
    holds those (views of the file, :func:`_chunked`) while the coded columns' codes are copied
    out and dropped — with one mapping, the codes' pages read (~40 MB at 1M rows) stayed resident
    as long as the window. The first mapping's when the file is not the one checked any more."""
    plain = [n for n, p in pieces.items() if p.array is not None]
    if not plain or len(plain) == len(pieces):
        return pieces
    with pa.memory_map(str(path)) as source:
        again = pa.ipc.open_file(source).read_all()
    if _identity(path) != before:  # replaced meanwhile: not the file checked
        return pieces
    out = dict(pieces)
    for name in plain:
        col = again.column(name)
        arr, first = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks(), pieces[name].array
        if first is not None and arr.type == first.type and len(arr) == len(first):
            out[name] = Piece(array=arr)
    return out


def _identity(path: Path) -> tuple[int, int, int, int, int]:
    """A file's identity: device, inode, size, modification and change time (ns). Any write through
    the file system (in place, truncated, renamed or copied over) changes the change time, which no
    caller can set back (``utime`` sets only the access and modification times)."""
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _expression(name: str) -> str:
    """How the window reads column ``name`` (:func:`.window._column`)."""
    from .window import _column

    return _column(name)


def _entry(seg: Path, anchor: str) -> str:
    st = seg.stat()
    return f"{seg.name}.{st.st_size}.{st.st_mtime_ns}.{st.st_ino}.{anchor}"


def _anchor_tag(directory: Path) -> str:
    """The anchor segment's identity (it holds the schema every segment is read with): a column
    added to the log rewrites it, and every entry is then another."""
    st = (directory / ANCHOR_NAME).stat()
    return hashlib.blake2b(f"{st.st_size}.{st.st_mtime_ns}.{st.st_ino}".encode(), digest_size=4).hexdigest()


def _verified(root: Path) -> set[tuple[Any, ...]]:
    """The columns of entries a replay (of any process) checked, as :func:`_read`'s ``sound``
    holds them, from :data:`VERIFIED` (a missing or damaged memo: none)."""
    try:
        memo = orjson.loads((root / VERIFIED).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return set()
    out: set[tuple[Any, ...]] = set()
    for entry, held in memo.items() if isinstance(memo, dict) else ():
        try:
            identity = tuple(int(x) for x in held["id"])
            crcs = held["crc"].items()
        except (TypeError, KeyError, ValueError, AttributeError):
            continue
        if len(identity) == 5:
            out.update((str(entry), str(c), crc, *identity) for c, crc in crcs if type(crc) is int)
    return out


def _remember(root: Path, sound: set[tuple[Any, ...]]) -> None:
    """Write ``sound`` to :data:`VERIFIED` (atomically), only the entries whose file is still the
    one checked (an entry rewritten or pruned since leaves the memo)."""
    memo: dict[str, dict[str, Any]] = {}
    for entry, column, crc, *identity in sorted(sound, key=repr):
        held = memo.get(entry)
        if held is None:
            try:
                now = list(_identity(root / entry))
            except OSError:
                now = None
            if now != identity:
                continue
            held = memo[entry] = {"id": now, "crc": {}}
        if held["id"] == identity:
            held["crc"][column] = crc
    write_atomic(root / VERIFIED, orjson.dumps(memo), mode=0o644, durable=False)


class SegmentCache:
    """The cache of one data directory's log (see the module's docstring)."""

    def __init__(self, data_dir: Path, root: Path) -> None:
        self.directory = log_dir(data_dir)
        self.root = root
        self.writable = True
        self.stats = {"cached": 0, "written": 0, "tail": 0}
        #: the columns of entries whose CRC was checked, by this cache or (:data:`VERIFIED`) by an
        #: earlier process's, while the entry's file had the identity they name (see :func:`_read`)
        self.sound: set[tuple[Any, ...]] = _verified(root)
        self._remembered = frozenset(self.sound)
        self._forgot = False  # entries left the memo (pruned): written again
        self._ahead: list[str] | None = None
        self.anchor = _anchor_tag(self.directory)

    def remember(self) -> None:
        """Keep the columns this cache checked for later processes (:data:`VERIFIED`), when it checked any."""
        if not self.writable or (self.sound <= self._remembered and not self._forgot):
            return
        try:
            _remember(self.root, self.sound)
        except OSError:  # a read-only cache: every process checks again
            return
        self._remembered, self._forgot = frozenset(self.sound), False

    def segments(self, now: float) -> list[Path]:
        """The segments a query started at ``now`` reads, in name order (the scan's), anchor aside."""
        shown = visible(listing(self.directory), now)
        return [self.directory / n for n in sorted(shown) if n != ANCHOR_NAME]

    def read(self, con: duckdb.DuckDBPyConnection, seg: Path, names: Sequence[str]) -> dict[str, Piece]:
        """Columns ``names`` of segment ``seg``: from the cache, else from Parquet (stored when it
        is large enough). Raises OSError / duckdb.Error when the segment vanished meanwhile."""
        entry = self.root / f"{_entry(seg, self.anchor)}.arrow" if seg.stat().st_size >= MIN_BYTES else None
        held: dict[str, Piece] = {}
        if entry is not None:
            try:
                held = _read(entry, names, self.sound)
                if not all(n in held for n in names):  # to be rewritten: with every sound column it holds
                    held = _read(entry, sound=self.sound)
            except (FileNotFoundError, pa.ArrowInvalid, OSError):
                held = {}
            if all(n in held for n in names):
                self.stats["cached"] += 1
                return {n: held[n] for n in names}
        missing = [n for n in names if n not in held]
        if entry is not None and self.writable:  # written once: with the columns later scans read too
            missing += [n for n in self.ahead() if n not in held and n not in missing]
        table = self._parquet(con, seg, missing)
        self.stats["tail" if entry is None else "written"] += 1
        for name in missing:
            col = table.column(name)
            held[name] = _piece(name, col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())
        if entry is not None and self.writable:
            self._store(entry, held)  # with the columns it held already
        return {n: held[n] for n in names}

    def ahead(self) -> list[str]:
        """The log columns an entry is written with whenever it is written, besides those asked
        for: every column a replay's window exposes (:data:`.window.LOG_COLUMNS`, the guardrails'
        verdicts, the writer's scalars the fold prefers) that the log has — bodies, metadata and
        embeddings aside (streamed, never held). So a cold replay writes each entry once: its
        first scan reads them from Parquet with the window's, and the later scans (the fold's
        columns, the semantic cache's) find them — each scan that asked for more columns rewrote
        the entry with them (5 writes of each entry for a full replay). A cold routing-only
        replay decodes them too (the first replay of any policy builds what later ones read)."""
        if self._ahead is None:
            import pyarrow.parquet as pq  # type: ignore[import-untyped]

            from .window import LENT, LOG_COLUMNS

            try:
                present = set(pq.read_schema(self.directory / ANCHOR_NAME).names)
            except (OSError, pa.ArrowInvalid):
                present = set()
            wanted = dict.fromkeys((*LOG_COLUMNS, "guardrails", "exact_key", "cache_team"))
            self._ahead = [n for n in wanted if n in present and n not in LENT and n != "embedding"]
        return self._ahead

    def _parquet(self, con: duckdb.DuckDBPyConnection, seg: Path, names: Sequence[str]) -> pa.Table:
        from .window import _column

        files = f"['{_sql_path(self.directory / ANCHOR_NAME)}', '{_sql_path(seg)}']"  # the view's schema
        sql = f"SELECT {', '.join(_column(c) for c in names)} FROM read_parquet({files})"
        return con.sql(sql).to_arrow_table(1 << 22)  # one thread: see load_head

    def _store(self, entry: Path, pieces: dict[str, Piece]) -> None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            _write(entry, pieces)
        except OSError:  # a read-only or full disk: replay reads Parquet instead
            self.writable = False

    def prune(self) -> None:
        """Remove entries of segments that are no longer in the log's directory."""
        if not self.root.is_dir():
            return
        keep = set()
        for seg, _ in listing(self.directory):
            try:
                keep.add(_entry(seg.path, self.anchor))
            except FileNotFoundError:
                continue
        import time

        gone: set[str] = set()
        for child in self.root.iterdir():
            if child.name.startswith("."):  # a write that was killed: removed once surely abandoned
                with contextlib.suppress(OSError):
                    if child.stat().st_mtime < time.time() - 3600:
                        child.unlink()
            elif child.name.startswith("seg-") and child.name.removesuffix(SUMS).removesuffix(".arrow") not in keep:
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                    gone.add(child.name)
        if any(checked[0] in gone for checked in self.sound):  # the memo of checked sums forgets them
            self.sound = {checked for checked in self.sound if checked[0] not in gone}
            self._forgot = True
            self.remember()


def cache_for(con: duckdb.DuckDBPyConnection) -> SegmentCache | None:
    """The segment cache of the log ``con`` reads (None: not cacheable, or turned off)."""
    data_dir = log_of(con)
    if data_dir is None:
        return None
    root = cache_root(data_dir)
    try:
        return None if root is None else SegmentCache(data_dir, root)
    except OSError:  # no anchor to key entries by (the view would fail too): read through the view
        return None


@dataclass
class Source:
    """Where a window loaded through the cache reads its later columns (:func:`load_more`): the
    same segments, in the same order, with the same bounds."""

    cache: SegmentCache
    segments: list[Path]
    bounds: list[int | None]


Head = tuple[pa.Table, dict[str, tuple[np.ndarray, list[Any]]], "pa.Array | None", Source]


def load_head(
    con: duckdb.DuckDBPyConnection, cache: SegmentCache, names: Sequence[str], since: Any, until: Any
) -> Head | None:
    """The window's first scan (``names``: ``request_id``, ``ts`` first) through the cache, in the
    forms :func:`.window.load_window` holds: (the table in window order, the codes of its coded
    columns, the scan row of each window row or None when the scan is in window order, where its
    later columns are read from). None when the cache cannot serve it (an empty log, a segment
    that vanished while it was read): the caller reads through the view."""
    import time

    bounds = [_epoch_us(con, t) for t in (since, until)]
    try:
        segs = cache.segments(time.time())
    except OSError:
        return None
    if not segs:
        return None
    source = Source(cache, segs, bounds)
    parts = _parts(con, source, names)
    if parts is None:
        return None
    with contextlib.suppress(OSError):  # a cache directory that cannot be listed: nothing to tidy
        cache.prune()
    ids, ts = _chunked(parts, "request_id"), _chunked(parts, "ts")
    return (*_assemble(names, parts, ids, ts, window_order(ids, ts)), source)


#: at most this many runs of rows sharing a time stamp are ordered one by one (:func:`window_order`)
TIED_RUNS_MAX = 4096


def window_order(ids: pa.Array | pa.ChunkedArray, ts: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """The scan row of each window row — ``sort_indices`` by (``ts``, ``request_id``), stable — or
    None when the scan is in window order. Sealed segments are mostly in time order already: when
    ``ts`` never decreases (no NULL time or id), only the runs of rows sharing a time stamp are
    sorted, by their ids (Python orders ``str`` by code point, as Arrow orders UTF-8 by byte)."""
    if ts.null_count or ids.null_count or not pa.types.is_timestamp(ts.type):
        return _sorted(ids, ts)
    chunks = ts.chunks if isinstance(ts, pa.ChunkedArray) else [ts]
    us = np.concatenate([c.view(pa.int64()).to_numpy() for c in chunks]) if chunks else np.zeros(0, np.int64)
    if bool((us[1:] < us[:-1]).any()):
        return _sorted(ids, ts)
    ties = np.flatnonzero(us[1:] == us[:-1])
    if not len(ties):
        return None
    breaks = np.flatnonzero(np.diff(ties) > 1) + 1
    if len(breaks) >= TIED_RUNS_MAX:
        return _sorted(ids, ts)
    idx: np.ndarray | None = None
    for run in np.split(ties, breaks):
        lo, hi = int(run[0]), int(run[-1]) + 2  # rows lo..hi-1 share one time stamp
        tied = ids.slice(lo, hi - lo).to_pylist()
        moved = sorted(range(len(tied)), key=tied.__getitem__)
        if moved != list(range(len(tied))):
            if idx is None:
                idx = np.arange(len(ids), dtype=np.uint64)
            idx[lo:hi] = np.asarray(moved, np.uint64) + lo
    return None if idx is None else pa.array(idx)


def _sorted(ids: pa.Array | pa.ChunkedArray, ts: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    order = pc.sort_indices(pa.table({"ts": ts, "request_id": ids}), [("ts", "ascending"), ("request_id", "ascending")])
    idx = order.to_numpy()
    return None if np.array_equal(idx, np.arange(len(idx), dtype=idx.dtype)) else order


def _parts(con: duckdb.DuckDBPyConnection, source: Source, names: Sequence[str]) -> list[dict[str, Piece]] | None:
    """Columns ``names`` of each of ``source``'s segments inside its bounds (None: a segment vanished)."""
    import duckdb

    from .window import _one_thread

    try:
        with _one_thread(con):  # once for every segment read from Parquet
            parts = [_masked(source.cache.read(con, seg, names), source.bounds) for seg in source.segments]
    except (OSError, duckdb.Error):
        return None
    source.cache.remember()
    return parts


def load_more(
    con: duckdb.DuckDBPyConnection, source: Source, names: Sequence[str], order: pa.Array | None, ids: pa.ChunkedArray
) -> tuple[pa.Table, dict[str, tuple[np.ndarray, list[Any]]]] | None:
    """Log columns ``names`` of a window :func:`load_head` read (``order``: its scan row of each
    window row; ``ids``: its request ids, in window order) from the same segments through the
    cache — as the window holds them (few-valued strings coded, in order of first appearance),
    without decoding Parquet or coding strings again when the entries hold them (else they are
    read from Parquet and stored beside the entry's other columns). None when the segments are
    no longer those rows (a merge deleted one, a bound cut differently): the caller scans."""
    wanted = [n for n in names if n not in ("request_id", "ts")]
    parts = _parts(con, source, ["request_id", "ts", *wanted])
    if parts is None:
        return None
    got_ids = _chunked(parts, "request_id")
    if len(got_ids) != len(ids):
        return None
    ts = _chunked(parts, "ts")
    table, coded, _ = _assemble(["request_id", *wanted], parts, got_ids, ts, order)
    if not table.column("request_id").equals(ids):  # other rows, or in another order
        return None
    return table.select(wanted), coded


def _epoch_us(con: duckdb.DuckDBPyConnection, at: Any) -> int | None:
    if at is None:
        return None
    return int(con.execute("SELECT epoch_us(CAST(? AS TIMESTAMPTZ))", [at]).fetchall()[0][0])


def _masked(pieces: dict[str, Piece], bounds: list[int | None]) -> dict[str, Piece]:
    """The rows of one segment inside ``[since, until)`` (as the window's SQL keeps them: a NULL
    time is outside any bound)."""
    since, until = bounds
    if since is None and until is None:
        return pieces
    ts = pieces["ts"].array
    assert ts is not None  # never coded (PLAIN)
    us = ts.cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    keep = pc.is_valid(us).to_numpy(zero_copy_only=False)
    vals = pc.fill_null(us, 0).to_numpy(zero_copy_only=False)
    if since is not None:
        keep &= vals >= since
    if until is not None:
        keep &= vals < until
    if keep.all():
        return pieces
    rows = np.flatnonzero(keep)
    out = {}
    for name, p in pieces.items():
        if p.array is not None:
            out[name] = Piece(array=p.array.take(pa.array(rows)))
        else:
            assert p.codes is not None
            out[name] = Piece(codes=p.codes[rows], values=p.values, type=p.type, whole=False)
    return out


def _assemble(
    names: Sequence[str],
    parts: list[dict[str, Piece]],
    ids: pa.ChunkedArray,
    ts: pa.ChunkedArray,
    order: pa.Array | None,
) -> tuple[pa.Table, dict[str, tuple[np.ndarray, list[Any]]], pa.Array | None]:
    from .window import _compact, _permuted

    arrays: dict[str, pa.Array | pa.ChunkedArray] = {"request_id": ids, "ts": ts}
    coded_names = []
    for name in names:
        if name in arrays:
            continue
        pieces = [p[name] for p in parts]
        if all(p.codes is not None for p in pieces):
            coded_names.append(name)
        else:  # a column of many values (in some segment): as the view's scan gives it
            arrays[name] = pa.chunked_array([_decoded(p) for p in pieces])
    table = pa.table(arrays)
    if order is not None:
        table = _permuted(table, order)
    table, coded = _compact(table)  # the window's own rule for the plain columns
    out: dict[str, pa.Array | pa.ChunkedArray] = {n: table.column(n) for n in table.column_names}
    idx = moved = runs = None
    if order is not None:
        idx = order.to_numpy()
        moved = np.flatnonzero(idx != np.arange(len(idx), dtype=idx.dtype))
        runs = moved_runs(idx, moved, TIED_RUNS_MAX)
    for name in coded_names:
        col, codes = coded_column([p[name] for p in parts], idx, moved, runs)
        out[name] = col
        if codes is not None:
            coded[name] = codes
    return pa.table({n: out[n] for n in names}), coded, order


def _chunked(parts: list[dict[str, Piece]], name: str) -> pa.ChunkedArray:
    """A plain column of every segment as one chunked column of the segments' own arrays — views
    of the cache's mapped files (page-cache pages), not concatenated into new memory: at 1M rows
    a routing-only window's ids, times, attempts, token counts, costs and sources are ~120 MB,
    ~30k fresh pages of a first call, and a copy of each."""
    arrays = [p[name].array for p in parts]
    assert all(a is not None for a in arrays)  # never coded: request_id, ts
    return pa.chunked_array(arrays)


def _decoded(p: Piece) -> pa.Array:
    if p.array is not None:
        return p.array
    assert p.codes is not None and p.type is not None
    indices = pa.array(p.codes, mask=p.codes < 0)
    return pa.DictionaryArray.from_arrays(indices, dictionary_values(p.values, p.type)).dictionary_decode()
