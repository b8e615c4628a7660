"""Reading the request log from any process, while a server writes it.

>>> import tempfile
>>> from llmgw_kernel import open_log
>>> con = open_log(tempfile.mkdtemp())
>>> con.execute("SELECT count(*) FROM requests").fetchone()
(0,)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .segments import _sql_path, ensure_anchor, ensure_columns, listing, log_dir, names_memo, visible

if TYPE_CHECKING:
    import duckdb


def requests_view_sql(directories: Path | Sequence[Path]) -> str:
    """SQL of the ``requests`` view: the segments :func:`.segments.visible` picks for the
    query's start time, over one log directory or several (read as one table). The filter
    names only ``filename``, so DuckDB applies it to the list of files before it opens any (a
    superseded segment the writer deletes is never opened); the schema comes from the anchor
    segment, which sorts first and is never deleted."""
    dirs = [directories] if isinstance(directories, Path) else list(directories)
    globs = ", ".join("'" + _sql_path(d / "seg-*.parquet") + "'" for d in dirs)
    return f"""
CREATE OR REPLACE VIEW requests AS
SELECT * EXCLUDE (filename)
FROM read_parquet([{globs}], filename = true)
WHERE llmgw_segment_visible(filename, now())
"""


class _Visibility:
    """``llmgw_segment_visible(filename, now())``: one listing per log directory per query (a
    query's ``now()`` is fixed), the verdict per file from its own directory's listing."""

    def __init__(self, directories: Sequence[Path]) -> None:
        self.directories = {os.path.normpath(d): d for d in directories}
        self._now: object = None
        self._visible: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, filename: str, now: Any) -> bool:
        where = os.path.normpath(os.path.dirname(filename))
        with self._lock:
            if now != self._now:
                self._visible, self._now = {}, now
            shown = self._visible.get(where)
            if shown is None:
                directory = self.directories.get(where, Path(where))
                shown = self._visible[where] = visible(listing(directory), now.timestamp())
        # DuckDB listed the files before this listing: a file missing here was deleted since,
        # which the writer does only once a mature merge holds its rows
        return os.path.basename(filename) in shown


def open_log(
    data_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    connection: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose view ``requests`` holds one row per logged request.

    Safe while a server writes the same directory: segments appear by atomic rename, the view
    re-lists them on every query (new rows show up without reopening), and a query never opens
    a segment the writer may delete (:mod:`.segments`). Timestamps are UTC (the session time
    zone is set to UTC).

    Several data directories (a list) read as one table — e.g. served traffic beside traffic
    ``llmgw import`` wrote (``origin`` tells them apart); the first one's key history is the
    connection's (:func:`data_dir_of`).
    """
    import duckdb

    roots = [data_dir] if isinstance(data_dir, (str, os.PathLike)) else list(data_dir)
    if not roots:
        raise ValueError("open_log: no data directory given")
    directories = [log_dir(root) for root in roots]
    for root, directory in zip(roots, directories, strict=True):
        memo = names_memo(root)  # the footers a process before this one read (segments.py)
        ensure_anchor(directory, memo)
        ensure_columns(directory, memo)
    con = connection or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    with contextlib.suppress(Exception):  # registered before on this connection
        con.remove_function("llmgw_segment_visible")
    con.create_function(
        "llmgw_segment_visible", _Visibility(directories), ["VARCHAR", "TIMESTAMP WITH TIME ZONE"], "BOOLEAN"
    )
    con.execute(requests_view_sql(directories))
    root = str(Path(roots[0]).resolve()).replace("'", "''")
    con.execute(f"CREATE OR REPLACE TEMP MACRO llmgw_data_dir() AS '{root}'")
    return con


def data_dir_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The data directory an :func:`open_log` connection reads (None for other connections)."""
    try:
        row = con.execute("SELECT llmgw_data_dir()").fetchall()
    except Exception:
        return None
    return Path(row[0][0]) if row else None
