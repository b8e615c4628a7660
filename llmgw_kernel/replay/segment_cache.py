"""A columnar replay cache of sealed log segments: the columns a replay reads, per segment, coded.

Analysts replay the same recent window again and again while they tune a policy. Each replay
read the window's ~20 columns from Parquet through DuckDB (≈ 0.6 CPU s per million rows) and
dictionary-coded its few-valued strings (≈ 0.2 s) — work whose result depends only on the
segment, and segments never change once they are renamed into place (docs/log.md). So the first
replay that reads a segment stores its columns beside the log, each as an uncompressed Arrow IPC
file, strings of few values as int32 codes with their dictionary, and later replays memory-map
them instead:

    <data-dir>/replay-cache/<segment name>.<size>.<mtime ns>.<inode>/<column>.arrow

- **Identity.** An entry is the segment's name with its size, modification time and inode: a
  segment rewritten in place (``segments.ensure_columns``: a new file renamed over the old one)
  or a name reused is another entry. Entries of segments no longer in the directory (merged
  away and deleted) are removed when a replay writes the cache.
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

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..log.reader import data_dir_of
from ..log.segments import ANCHOR_NAME, _sql_path, listing, log_dir, visible

if TYPE_CHECKING:
    import duckdb

#: segments smaller than this are the live tail: read from Parquet each time, not stored
MIN_BYTES = 1 << 20
CACHE_DIR = "replay-cache"
ENV = "LLMGW_REPLAY_CACHE"
_CODED_META = b"llmgw_values"  # a coded column's dictionary (JSON list), in its file's schema metadata
_TYPE_META = b"llmgw_type"  # a coded column's own type (a serialized schema), in the same metadata


def cache_root(data_dir: Path) -> Path | None:
    """Where the cache of ``data_dir``'s log lives (None: turned off)."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() in ("off", "0", "false", "no"):
        return None
    if env:
        return Path(env) / (data_dir.resolve().as_posix().strip("/").replace("/", "_") or "root")
    return data_dir / CACHE_DIR


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
    glob = _sql_path(log_dir(root) / "seg-*.parquet")
    if not row or f"read_parquet(list_value('{glob}')," not in row[0][0]:  # several directories, or another view
        return None
    return root


@dataclass
class Piece:
    """One column of one segment: plain (``array``), or coded (``codes``, -1 for NULL, into ``values``)."""

    array: pa.Array | None = None
    codes: np.ndarray | None = None
    values: list[Any] = field(default_factory=list)
    type: pa.DataType | None = None  # a coded column's own type (string, or a list of strings)


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


def _write_column(path: Path, piece: Piece) -> None:
    """A column of a segment as one IPC file (few-valued strings coded), written atomically."""
    if piece.codes is not None:
        assert piece.type is not None
        meta = {
            _CODED_META: orjson.dumps(piece.values),
            _TYPE_META: pa.schema([("t", piece.type)]).serialize().to_pybytes(),
        }
        table = pa.table({"codes": piece.codes}).replace_schema_metadata(meta)
    else:
        table = pa.table({"v": piece.array})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_column(path: Path) -> Piece:
    """A column file, memory-mapped (the arrays are views of the file's pages)."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    meta = table.schema.metadata or {}
    if _CODED_META in meta:
        typ = pa.ipc.read_schema(pa.py_buffer(meta[_TYPE_META])).field(0).type
        codes = table.column(0).chunk(0).to_numpy() if table.num_rows else np.empty(0, np.int32)
        return Piece(codes=codes, values=orjson.loads(meta[_CODED_META]), type=typ)
    col = table.column(0)
    return Piece(array=col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())


def _entry(seg: Path) -> str:
    st = seg.stat()
    return f"{seg.name}.{st.st_size}.{st.st_mtime_ns}.{st.st_ino}"


class SegmentCache:
    """The cache of one data directory's log (see the module's docstring)."""

    def __init__(self, data_dir: Path, root: Path) -> None:
        self.directory = log_dir(data_dir)
        self.root = root
        self.writable = True
        self.stats = {"cached": 0, "written": 0, "tail": 0}

    def segments(self, now: float) -> list[Path]:
        """The segments a query started at ``now`` reads, in name order (the scan's), anchor aside."""
        shown = visible(listing(self.directory), now)
        return [self.directory / n for n in sorted(shown) if n != ANCHOR_NAME]

    def read(self, con: duckdb.DuckDBPyConnection, seg: Path, names: Sequence[str]) -> dict[str, Piece]:
        """Columns ``names`` of segment ``seg``: from the cache, else from Parquet (stored when it
        is large enough). Raises OSError / duckdb.Error when the segment vanished meanwhile."""
        size = seg.stat().st_size
        entry = self.root / _entry(seg) if size >= MIN_BYTES else None
        out: dict[str, Piece] = {}
        missing = list(names)
        if entry is not None and entry.is_dir():
            for name in names:
                try:
                    out[name] = _read_column(entry / f"{name}.arrow")
                except (FileNotFoundError, pa.ArrowInvalid, OSError):
                    continue
            missing = [n for n in names if n not in out]
            if not missing:
                self.stats["cached"] += 1
                return out
        table = self._parquet(con, seg, missing)
        self.stats["tail" if entry is None else "written"] += 1
        for name in missing:
            col = table.column(name)
            col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            out[name] = _piece(name, col)
        if entry is not None and self.writable:
            self._store(entry, {n: out[n] for n in missing})
        return out

    def _parquet(self, con: duckdb.DuckDBPyConnection, seg: Path, names: Sequence[str]) -> pa.Table:
        from .window import _column, _one_thread

        files = f"['{_sql_path(self.directory / ANCHOR_NAME)}', '{_sql_path(seg)}']"  # the view's schema
        sql = f"SELECT {', '.join(_column(c) for c in names)} FROM read_parquet({files})"
        with _one_thread(con):
            return con.sql(sql).to_arrow_table(1 << 22)

    def _store(self, entry: Path, pieces: dict[str, Piece]) -> None:
        try:
            entry.mkdir(parents=True, exist_ok=True)
            for name, piece in pieces.items():
                _write_column(entry / f"{name}.arrow", piece)
        except OSError:  # a read-only or full disk: replay reads Parquet instead
            self.writable = False

    def prune(self) -> None:
        """Remove entries of segments that are no longer in the log's directory."""
        if not self.root.is_dir():
            return
        keep = set()
        for seg, _ in listing(self.directory):
            try:
                keep.add(_entry(seg.path))
            except FileNotFoundError:
                continue
        for child in self.root.iterdir():
            if child.is_dir() and child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)


def cache_for(con: duckdb.DuckDBPyConnection) -> SegmentCache | None:
    """The segment cache of the log ``con`` reads (None: not cacheable, or turned off)."""
    data_dir = log_of(con)
    if data_dir is None:
        return None
    root = cache_root(data_dir)
    return None if root is None else SegmentCache(data_dir, root)


def load_head(
    con: duckdb.DuckDBPyConnection, cache: SegmentCache, names: Sequence[str], since: Any, until: Any
) -> tuple[pa.Table, dict[str, tuple[np.ndarray, list[Any]]], pa.Array | None] | None:
    """The window's first scan (``names``: ``request_id``, ``ts`` first) through the cache, in the
    forms :func:`.window.load_window` holds: (the table in window order, the codes of its coded
    columns, the scan row of each window row or None when the scan is in window order). None
    when the cache cannot serve it (an empty log, a segment that vanished while it was read):
    the caller reads through the view."""
    import time

    import duckdb

    bounds = [_epoch_us(con, t) for t in (since, until)]
    try:
        segs = cache.segments(time.time())
        if not segs:
            return None
        parts = [_masked(cache.read(con, seg, names), bounds) for seg in segs]
    except (OSError, duckdb.Error):
        return None
    cache.prune()
    ids = pa.concat_arrays([p["request_id"].array for p in parts])
    ts = pa.concat_arrays([p["ts"].array for p in parts])
    order = pc.sort_indices(pa.table({"ts": ts, "request_id": ids}), [("ts", "ascending"), ("request_id", "ascending")])
    idx = order.to_numpy()
    identity = bool(np.array_equal(idx, np.arange(len(idx), dtype=idx.dtype)))
    return _assemble(names, parts, ids, ts, None if identity else order)


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
            out[name] = Piece(codes=p.codes[rows], values=p.values, type=p.type)
    return out


def _assemble(
    names: Sequence[str], parts: list[dict[str, Piece]], ids: pa.Array, ts: pa.Array, order: pa.Array | None
) -> tuple[pa.Table, dict[str, tuple[np.ndarray, list[Any]]], pa.Array | None]:
    from .window import CODED_MAX_SHARE, CODED_SAMPLE_ROWS, _permuted

    idx = None if order is None else order.to_numpy()
    arrays: dict[str, pa.Array] = {"request_id": ids, "ts": ts}
    coded: dict[str, tuple[np.ndarray, list[Any]]] = {}
    plain = [n for n in names if n not in arrays and not codable(_type(parts[0][n]))]
    for name in plain:
        arrays[name] = pa.concat_arrays([p[name].array for p in parts])
    table = pa.table({n: arrays[n] for n in arrays})
    if order is not None:
        table = _permuted(table, order)
    out: dict[str, pa.Array | pa.ChunkedArray] = {n: table.column(n) for n in table.column_names}
    for name in names:
        if name in out:
            continue
        g, values, typ = _unified([p[name] for p in parts])
        if idx is not None:
            g = g[idx]
        sample = g[:CODED_SAMPLE_ROWS]
        sample = sample[sample >= 0]
        worth = len(np.unique(sample)) <= CODED_MAX_SHARE * max(len(sample), 1)
        codes, vals = _first_appearance(g, values)
        dictionary = _dictionary_values(vals, typ)
        indices = pa.array(codes, mask=codes < 0)
        col = pa.DictionaryArray.from_arrays(indices, dictionary)
        if worth:
            coded[name] = (codes, vals)
            out[name] = col
        else:
            out[name] = col.dictionary_decode()
    return pa.table({n: out[n] for n in names}), coded, order


def _type(p: Piece) -> pa.DataType:
    return p.type if p.array is None else p.array.type


def _unified(pieces: list[Piece]) -> tuple[np.ndarray, list[Any], pa.DataType]:
    """The pieces of one column as codes into one dictionary (in scan order): (codes, values, type)."""
    gid: dict[Any, int] = {}
    chunks = []
    typ = None
    for p in pieces:
        if p.codes is None:
            assert p.array is not None
            p = _coded(p.array)
        typ = typ or p.type
        lut = np.fromiter((gid.setdefault(v, len(gid)) for v in p.values), np.int32, len(p.values))
        chunks.append(np.append(lut, np.int32(-1))[p.codes])  # -1 (NULL) indexes the appended -1
    return np.concatenate(chunks) if chunks else np.empty(0, np.int32), list(gid), typ


def _first_appearance(g: np.ndarray, values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes renumbered in order of first appearance (as ``dictionary_encode`` numbers them)."""
    import pandas as pd

    seen = pd.unique(g[g >= 0]) if len(values) > 1 else np.unique(g[g >= 0])
    remap = np.full(len(values) + 1, -1, np.int32)
    remap[seen] = np.arange(len(seen), dtype=np.int32)
    return remap[g], [values[i] for i in seen.tolist()]


def _dictionary_values(values: list[Any], typ: pa.DataType) -> pa.Array:
    from .window import split_plan

    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.array([split_plan(v) for v in values], typ)
    return pa.array(values, typ)
