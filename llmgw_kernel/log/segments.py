"""The on-disk layout of the request log: immutable Parquet segments.

``<data_dir>/log/requests/seg-<lo>-<hi>.parquet`` holds the rows of flushes ``lo..hi``.
A flush writes one segment (``lo == hi``); compaction merges a run of segments into one
whose range contains theirs. A segment whose range is contained in another's is
*superseded*. Replicas sharing one data directory (docs/deploy.md) each write their own
series, ``seg-<replica>-<lo>-<hi>.parquet``, numbered and merged independently: ranges are
compared only within one replica's series, and readers read every series as one table.
``seg-0-0`` is an empty segment that anchors the schema (a glob over zero files is an error
in DuckDB); every segment carries all of its columns.

Which segments a query reads (:func:`visible`) depends only on the names and modification
times in the directory and the query's start time, and DuckDB prunes the others by name
before it opens any file. A merged segment becomes visible ``MATURE_S`` after it appeared,
at the same instant its inputs become invisible, so a query sees each row exactly once; an
input is deleted ``GRACE_S`` later still (:mod:`.writer`), so a query fails only if it opens
a file more than ``GRACE_S`` after it started.

Files appear only by atomic rename, so readers in other processes never see a partial one.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .schema import COLUMNS

#: a replica id: a lower-case letter first (so every replica's segments sort after the anchor
#: ``seg-0…``), then lower-case letters, digits and ``-`` (a Kubernetes pod name fits)
REPLICA_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
#: groups 1 and 2 are lo and hi; the replica (if any) is the text between ``seg-`` and lo
SEGMENT_RE = re.compile(r"^seg-(?:[a-z][a-z0-9-]{0,62}-)?(\d{16})-(\d{16})\.parquet$")
ANCHOR_NAME = f"seg-{0:016d}-{0:016d}.parquet"
MATURE_S = 5.0  # a merged segment replaces its inputs for readers this long after it appeared


@dataclass(frozen=True, order=True, slots=True)
class Segment:
    lo: int
    hi: int
    path: Path
    replica: str = ""  # "" for a data directory served by one process; read from the name when not given

    def __post_init__(self) -> None:
        if not self.replica:
            m = SEGMENT_RE.match(self.path.name)
            if m is not None and m.start(1) > 4:
                object.__setattr__(self, "replica", self.path.name[4 : m.start(1) - 1])

    @property
    def span(self) -> int:
        return self.hi - self.lo + 1


def log_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "log" / "requests"


def derived_dir(data_dir: str | os.PathLike[str], env: str, default: str) -> Path | None:
    """Where a cache derived from ``data_dir``'s log lives (the replay's columns, the dashboards'
    rollups): ``<data-dir>/<default>``; ``$env=off`` (or 0/false/no): None (not used); ``$env=<dir>``:
    one folder per data directory under ``<dir>``, its resolved path made a name plus a hash of
    that path (``a/b_c`` and ``a_b/c`` make the same name, not the same hash)."""
    value = os.environ.get(env, "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        path = Path(data_dir).resolve().as_posix()
        tag = hashlib.blake2b(path.encode(), digest_size=4).hexdigest()
        return Path(value) / f"{path.strip('/').replace('/', '_') or 'root'}-{tag}"
    return Path(data_dir) / default


def segment_name(lo: int, hi: int, replica: str = "") -> str:
    """``seg-<lo>-<hi>.parquet``, or ``seg-<replica>-<lo>-<hi>.parquet`` for a replica's series.

    >>> segment_name(3, 4, "gw-1-0")
    'seg-gw-1-0-0000000000000003-0000000000000004.parquet'
    >>> Segment(3, 4, Path(segment_name(3, 4, "gw-1-0"))).replica
    'gw-1-0'
    """
    if replica and not REPLICA_RE.match(replica):
        raise ValueError(f"not a replica id: {replica!r} (a-z first, then a-z, 0-9, '-'; at most 63)")
    prefix = f"seg-{replica}-" if replica else "seg-"
    return f"{prefix}{lo:016d}-{hi:016d}.parquet"


def list_segments(directory: Path) -> list[Segment]:
    out = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        m = SEGMENT_RE.match(name)
        if m:
            out.append(Segment(int(m.group(1)), int(m.group(2)), directory / name))
    out.sort()
    return out


def series(segments: list[Segment], replica: str) -> list[Segment]:
    """The segments of one replica's series (``""``: the unreplicated one)."""
    return [s for s in segments if s.replica == replica]


def split_live(segments: list[Segment]) -> tuple[list[Segment], list[Segment]]:
    """(live, superseded): a segment is superseded when a wider one of its series contains
    its range."""
    live: list[Segment] = []
    superseded: list[Segment] = []
    for s in segments:
        if any(o.replica == s.replica and o.lo <= s.lo and s.hi <= o.hi and o.span > s.span for o in segments):
            superseded.append(s)
        else:
            live.append(s)
    return live, superseded


def visible(segments: list[tuple[Segment, float]], now: float, mature_s: float | None = None) -> set[str]:
    """Names of the segments a query started at ``now`` reads, given ``(segment, mtime)``.

    A merged segment (``lo < hi``) that still has an input on disk is read only once it is
    ``mature_s`` old; a segment contained in a mature wider one is not read. Each row is then
    read exactly once at any ``now``. Each replica's series is decided on its own (their
    ranges are independent numberings). O(n log n).
    """
    by_replica: dict[str, list[tuple[Segment, float]]] = {}
    for item in segments:
        by_replica.setdefault(item[0].replica, []).append(item)
    out: set[str] = set()
    for group in by_replica.values():
        out |= _visible_series(group, now, MATURE_S if mature_s is None else mature_s)
    return out


def _visible_series(segments: list[tuple[Segment, float]], now: float, mature_s: float) -> set[str]:
    names = {s.path.name for s, _ in segments}
    wide = sorted((s.lo, -s.hi, s) for s, mtime in segments if s.lo < s.hi and mtime <= now - mature_s)
    starts = [lo for lo, _, _ in wide]
    reach: list[tuple[int, int]] = []  # running max of (hi, -lo) over wide[: i + 1]
    for lo, neg_hi, _ in wide:
        best = (-neg_hi, -lo)
        reach.append(max(reach[-1], best) if reach else best)
    by_lo = sorted((s.lo, s.hi) for s, _ in segments)
    out = set()
    for s, mtime in segments:
        i = bisect.bisect_right(starts, s.lo) - 1
        if i >= 0:
            hi, neg_lo = reach[i]
            if hi > s.hi or (hi == s.hi and -neg_lo < s.lo):
                continue  # contained in a mature wider segment
        if s.lo < s.hi and mtime > now - mature_s and _has_input(by_lo, s):
            continue  # merged too recently: its inputs are read instead
        out.add(s.path.name)
    return out & names


def _has_input(by_lo: list[tuple[int, int]], s: Segment) -> bool:
    i = bisect.bisect_left(by_lo, (s.lo, -1))
    while i < len(by_lo) and by_lo[i][0] <= s.hi:
        lo, hi = by_lo[i]
        if hi <= s.hi and (lo, hi) != (s.lo, s.hi):
            return True
        i += 1
    return False


def listing(directory: Path) -> list[tuple[Segment, float]]:
    """Every segment of ``directory`` with its modification time (vanished files skipped)."""
    out = []
    for s in list_segments(directory):
        try:
            out.append((s, s.path.stat().st_mtime))
        except FileNotFoundError:
            continue
    return out


#: the column names of each segment file this process has read, by path, with the file's identity
#: when read (device, inode, size, mtime in ns): a file is re-read only when it is another file
#: (renamed over, rewritten) — sealed segments never change in place (docs/log.md)
_SCHEMAS: dict[str, tuple[tuple[int, int, int, int], frozenset[str]]] = {}
_SCHEMAS_MAX = 65_536  # bounded: forgotten all at once past this many (re-read on next use)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_names(paths: list[Path]) -> dict[Path, frozenset[str]]:
    """The column names in each Parquet file's footer, by one DuckDB metadata query (file by
    file if one vanished meanwhile); a vanished or non-Parquet file is left out. DuckDB, not
    ``pyarrow.parquet``: the proxy's log writer calls this as it starts, and importing
    ``pyarrow.parquet`` there cost it ~13 MB of resident memory."""
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    try:
        try:
            rows = con.execute("SELECT file_name, name FROM parquet_schema(?)", [[str(p) for p in paths]]).fetchall()
        except (duckdb.IOException, duckdb.InvalidInputException):
            rows = []
            for p in paths:  # a file deleted (a superseded segment), or not Parquet: not ours to fix
                with contextlib.suppress(duckdb.IOException, duckdb.InvalidInputException):
                    rows += con.execute("SELECT file_name, name FROM parquet_schema(?)", [str(p)]).fetchall()
    finally:
        con.close()
    names: dict[str, set[str]] = {}
    for file_name, name in rows:
        names.setdefault(file_name, set()).add(name)
    return {p: frozenset(names[str(p)]) for p in paths if str(p) in names}


def column_names(paths: list[Path], memo: Path | None = None) -> dict[Path, frozenset[str]]:
    """The column names of each Parquet file in ``paths``, read from its footer once per file
    identity in this process (the files not seen before, or replaced since, in one query); a
    vanished or non-Parquet file is left out. ``memo`` (:func:`names_memo`): a file that keeps the
    names by file identity across processes — a file whose identity it holds is not read again."""
    out: dict[Path, frozenset[str]] = {}
    unknown: dict[Path, tuple[int, int, int, int]] = {}
    for path in paths:
        try:
            ident = _identity(os.stat(path))
        except FileNotFoundError:
            continue
        known = _SCHEMAS.get(str(path))
        if known is not None and known[0] == ident:
            out[path] = known[1]
        else:
            unknown[path] = ident
    if unknown and memo is not None:
        kept = _memo_read(memo)
        for path, ident in list(unknown.items()):
            entry = kept.get(path.name)
            if entry is not None and entry[0] == ident:
                out[path] = entry[1]
                _remember(path, ident, entry[1])
                del unknown[path]
    if unknown:
        read = _read_names(list(unknown))
        for path, names in read.items():
            out[path] = names
            try:
                same = _identity(os.stat(path)) == unknown[path]
            except FileNotFoundError:
                same = False
            if same:  # not replaced while read: the names are this identity's
                _remember(path, unknown[path], names)
        if memo is not None and read:
            _memo_write(memo, paths)
    return out


def _remember(path: Path, ident: tuple[int, int, int, int], names: frozenset[str]) -> None:
    if len(_SCHEMAS) >= _SCHEMAS_MAX:
        _SCHEMAS.clear()
    _SCHEMAS[str(path)] = (ident, names)


#: the file, in a data directory's replay cache (:func:`names_memo`), that keeps its segments'
#: column names by file identity: a new process then reads no footer of a segment it lists
NAMES_MEMO = "segment-columns.json"
REPLAY_CACHE_ENV = "LLMGW_REPLAY_CACHE"  # the replay cache's place (replay.segment_cache)
REPLAY_CACHE_DIR = "replay-cache"


def names_memo(data_dir: str | os.PathLike[str]) -> Path | None:
    """Where ``data_dir``'s segments' column names are kept across processes: in its replay
    cache's directory, when there is one (a replay made it; None: none, or turned off)."""
    root = derived_dir(data_dir, REPLAY_CACHE_ENV, REPLAY_CACHE_DIR)
    return root / NAMES_MEMO if root is not None and root.is_dir() else None


def _memo_read(memo: Path) -> dict[str, tuple[tuple[int, int, int, int], frozenset[str]]]:
    """The memo's entries (file name -> (identity, names)); an unreadable or malformed memo: none."""
    import json

    try:
        doc = json.loads(memo.read_bytes())
        return {
            str(name): (tuple(int(v) for v in ident), frozenset(str(n) for n in names))  # type: ignore[misc]
            for name, (ident, names) in doc["files"].items()
            if len(ident) == 4
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _memo_write(memo: Path, paths: list[Path]) -> None:
    """Keep the names this process knows of ``paths`` in ``memo`` beside the entries it holds of
    other files still in their directory (a file deleted since is dropped: the memo stays as
    large as the directory), replaced atomically; a memo that cannot be written is skipped."""
    import json

    folder = paths[0].parent
    files = {
        name: [list(ident), sorted(names)]
        for name, (ident, names) in _memo_read(memo).items()
        if (folder / name).exists()
    }
    for path in paths:
        known = _SCHEMAS.get(str(path))
        if known is not None:
            files[path.name] = [list(known[0]), sorted(known[1])]
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")  # a dot file: pruned if abandoned
    try:
        tmp.write_text(json.dumps({"files": files}, separators=(",", ":")))
        os.replace(tmp, memo)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def ensure_anchor(directory: Path, memo: Path | None = None) -> None:
    """Write the empty schema segment if it is missing or lacks a column added since it was
    written (idempotent, atomic): readers then see every current column, NULL in older rows.
    ``memo``: as :func:`column_names`'s."""
    import duckdb  # the reader imports it anyway; the writer needs it here only

    path = directory / ANCHOR_NAME
    have = column_names([path], memo).get(path)
    if have is not None and have >= {name for name, _, _ in COLUMNS}:
        return

    directory.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(f'CAST(NULL AS {typ}) AS "{name}"' for name, typ, _ in COLUMNS)
    tmp = directory / f".{ANCHOR_NAME}.{os.getpid()}.tmp"
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT {cols} LIMIT 0) TO '{_sql_path(tmp)}' (FORMAT parquet)")
    finally:
        con.close()
    os.replace(tmp, path)


def ensure_columns(directory: Path, memo: Path | None = None) -> int:
    """Rewrite, in place and keeping its modification time, every segment that lacks a current
    column (written by an older release or another tool), so that all segments read with the
    anchor's schema. Returns how many were rewritten. Each file's footer is read once per file
    identity in this process (:func:`column_names`); a vanished or non-Parquet file is skipped
    (a superseded segment the writer deleted, or not ours to fix). ``memo``: as :func:`column_names`'s."""
    want = {name for name, _, _ in COLUMNS}
    have = column_names([s.path for s in list_segments(directory) if s.lo != 0], memo)
    stale = [(path, names) for path, names in have.items() if not names >= want]
    if not stale:
        return 0
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    try:
        for path, names in stale:
            _add_columns(con, path, set(names))
        return len(stale)
    finally:
        con.close()


def _add_columns(con: object, path: Path, have: set[str]) -> None:
    cols = ", ".join(f'"{name}"' if name in have else f'CAST(NULL AS {typ}) AS "{name}"' for name, typ, _ in COLUMNS)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.cols.tmp")
    try:
        mtime = path.stat().st_mtime
        con.execute(  # type: ignore[attr-defined]
            f"COPY (SELECT {cols} FROM read_parquet('{_sql_path(path)}')) TO '{_sql_path(tmp)}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    except FileNotFoundError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
