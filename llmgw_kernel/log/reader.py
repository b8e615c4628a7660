"""Reading the request log from any process, while a server writes it.

>>> import tempfile
>>> from llmgw_kernel import open_log
>>> con = open_log(tempfile.mkdtemp())
>>> con.execute("SELECT count(*) FROM requests").fetchone()
(0,)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .segments import _sql_path, ensure_anchor, log_dir

if TYPE_CHECKING:
    import duckdb


def requests_view_sql(directory: Path) -> str:
    """SQL of the ``requests`` view: every live segment, superseded ones skipped."""
    glob = _sql_path(directory / "seg-*.parquet")
    return f"""
CREATE OR REPLACE VIEW requests AS
WITH files AS (
    SELECT file,
           CAST(regexp_extract(file, 'seg-(\\d+)-(\\d+)\\.parquet$', 1) AS BIGINT) AS lo,
           CAST(regexp_extract(file, 'seg-(\\d+)-(\\d+)\\.parquet$', 2) AS BIGINT) AS hi
    FROM glob('{glob}')
), superseded AS (
    SELECT f.file FROM files f JOIN files g
      ON g.lo <= f.lo AND f.hi <= g.hi AND (g.hi - g.lo) > (f.hi - f.lo)
)
SELECT * EXCLUDE (filename)
FROM read_parquet('{glob}', union_by_name = true, filename = true)
WHERE filename NOT IN (SELECT file FROM superseded)
"""


def open_log(
    data_dir: str | os.PathLike[str], connection: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose view ``requests`` holds one row per logged request.

    Safe while a server writes the same directory (segments appear by atomic rename and the
    view re-lists them on every query, so new rows show up without reopening). Timestamps
    are UTC (the session time zone is set to UTC).
    """
    import duckdb

    directory = log_dir(data_dir)
    ensure_anchor(directory)
    con = connection or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(requests_view_sql(directory))
    root = str(Path(data_dir).resolve()).replace("'", "''")
    con.execute(f"CREATE OR REPLACE TEMP MACRO llmgw_data_dir() AS '{root}'")
    return con


def data_dir_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The data directory an :func:`open_log` connection reads (None for other connections)."""
    try:
        row = con.execute("SELECT llmgw_data_dir()").fetchall()
    except Exception:
        return None
    return Path(row[0][0]) if row else None
