"""The on-disk layout of the request log: immutable Parquet segments.

``<data_dir>/log/requests/seg-<lo>-<hi>.parquet`` holds the rows of flushes ``lo..hi``.
A flush writes one segment (``lo == hi``); compaction merges a run of segments into one
whose range contains theirs. A segment whose range is contained in another's is
*superseded*: readers skip it at once and it is deleted after a grace period, so a reader
that listed it a moment ago can still open it. ``seg-0-0`` is an empty segment that anchors
the schema (a glob over zero files is an error in DuckDB).

Files appear only by atomic rename, so readers in other processes never see a partial one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .schema import COLUMNS

SEGMENT_RE = re.compile(r"^seg-(\d{16})-(\d{16})\.parquet$")
ANCHOR_NAME = f"seg-{0:016d}-{0:016d}.parquet"


@dataclass(frozen=True, order=True, slots=True)
class Segment:
    lo: int
    hi: int
    path: Path

    @property
    def span(self) -> int:
        return self.hi - self.lo + 1


def log_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "log" / "requests"


def segment_name(lo: int, hi: int) -> str:
    return f"seg-{lo:016d}-{hi:016d}.parquet"


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


def split_live(segments: list[Segment]) -> tuple[list[Segment], list[Segment]]:
    """(live, superseded): a segment is superseded when a wider one contains its range."""
    live: list[Segment] = []
    superseded: list[Segment] = []
    for s in segments:
        if any(o.lo <= s.lo and s.hi <= o.hi and o.span > s.span for o in segments):
            superseded.append(s)
        else:
            live.append(s)
    return live, superseded


def ensure_anchor(directory: Path) -> None:
    """Write the empty schema segment if it is missing or lacks a column added since it was
    written (idempotent, atomic): readers then see every current column, NULL in older rows."""
    import duckdb  # the reader imports it anyway; the writer needs it here only

    path = directory / ANCHOR_NAME
    if path.exists():
        con = duckdb.connect()
        try:
            have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{_sql_path(path)}')").fetchall()}
        finally:
            con.close()
        if have >= {name for name, _, _ in COLUMNS}:
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


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
