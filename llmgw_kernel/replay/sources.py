"""Where a replay reads its request log from: a data directory, a directory of Parquet files, or
an object store (``s3://bucket/prefix``), each opened as a DuckDB connection with the
``requests`` view :func:`~llmgw_kernel.replay` reads (docs/replay-distributed.md).

- **a data directory** (it has ``log/requests/``): :func:`~llmgw_kernel.log.reader.open_log`,
  safe while a server writes it; the key history is the directory's own.
- **a directory of Parquet files** (a copy of ``log/requests/``, or any ``*.parquet``):
  read by DuckDB. Log segments (``seg-<lo>-<hi>.parquet``) are deduplicated by name: a
  merged segment and the inputs it contains may both be present in a copy, and each row is
  read once (the rule of :func:`~llmgw_kernel.log.segments.visible`, every segment mature).
- **an object-store URL** (any fsspec protocol with a filesystem installed: ``s3://`` needs
  ``s3fs``): listed and read through ``pyarrow.dataset`` over the fsspec filesystem (DuckDB's
  ``httpfs`` extension is not used: it is downloaded at run time). Credentials and endpoint
  come from ``storage_options`` (s3fs's: ``key``, ``secret``, ``endpoint_url``, ...) or else
  from the standard ``AWS_*`` environment variables (``AWS_ENDPOINT_URL`` included). Rows are
  streamed in batches, columns and row groups pruned by the query where pyarrow can.

Every source shows the log's current columns (:data:`~llmgw_kernel.log.schema.COLUMNS`): a
column missing from every file reads as NULL of its documented type, as
:func:`~llmgw_kernel.log.segments.ensure_columns` makes the live log read.

``key_history``: the data directory whose ``keys/`` holds the key history. Replay reads the
settings each request's key had (its own budget and rate limits) from it; a data-directory
source uses its own. Without one, keys' own budgets and rates are not replayed (only the
policy's limits apply): :func:`open_source` records the directory on the connection the way
``open_log`` does, which is where :func:`~llmgw_kernel.replay` looks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..log.reader import open_log
from ..log.schema import COLUMNS
from ..log.segments import SEGMENT_RE, Segment, log_dir, visible

if TYPE_CHECKING:
    import duckdb

#: the DuckDB view a replay reads
VIEW = "requests"
_RAW = "llmgw_source_raw"


@dataclass(frozen=True)
class Source:
    """A request log's location, picklable, so that every worker of a partitioned replay opens
    it itself (:meth:`open`)."""

    location: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    key_history: str | None = None

    @classmethod
    def of(cls, source: Source | str | os.PathLike[str], **kw: Any) -> Source:
        return source if isinstance(source, Source) else cls(os.fspath(source), **kw)

    @property
    def remote(self) -> bool:
        return "://" in self.location and not self.location.startswith("file://")

    def missing(self) -> str | None:
        """Why a local source holds no request log (None when it has one, or is remote): a
        mistyped ``--data-dir`` must be refused, not replayed as an empty window."""
        if self.remote:
            return None
        path = Path(self.location.removeprefix("file://"))
        if not path.exists():
            return f"{path} does not exist"
        if not path.is_dir():
            return f"{path} is not a directory"
        if any(log_dir(path).glob("seg-*.parquet")) or any(path.glob("*.parquet")):
            return None
        return (f"{path} holds no request log (no {log_dir(path)}/seg-*.parquet and no *.parquet files): "
                "give the --data-dir a server wrote, or a directory of its Parquet segments")  # fmt: skip

    def open(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with the ``requests`` view over this source."""
        if self.remote:
            con = _open_dataset(self.location, self.storage_options)
        else:
            path = Path(self.location.removeprefix("file://"))
            con = open_log(path) if log_dir(path).is_dir() else _open_parquet_dir(path)
        if self.key_history is not None:
            _record_data_dir(con, Path(self.key_history))
        return con


def open_source(
    source: Source | str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    key_history: str | os.PathLike[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose ``requests`` view reads ``source`` (a data directory, a
    directory of Parquet files or an object-store URL): ``replay(policy, open_source(url))``."""
    if isinstance(source, Source):
        return source.open()
    kh = os.fspath(key_history) if key_history is not None else None
    return Source(os.fspath(source), dict(storage_options or {}), kh).open()


def dedupe_segments(names: list[str]) -> list[str]:
    """The files to read among ``names`` (basenames or paths): every non-segment file, and the
    log segments that are not contained in a wider one (so each row is read once).

    >>> dedupe_segments(["seg-0000000000000001-0000000000000001.parquet",
    ...                  "seg-0000000000000001-0000000000000002.parquet",
    ...                  "seg-0000000000000002-0000000000000002.parquet", "extra.parquet"])
    ['extra.parquet', 'seg-0000000000000001-0000000000000002.parquet']
    """
    segments: list[tuple[Segment, float]] = []
    other: list[str] = []
    by_name: dict[str, str] = {}
    for name in names:
        base = PurePosixPath(name).name
        m = SEGMENT_RE.match(base)
        if m is None:
            other.append(name)
            continue
        by_name[base] = name
        segments.append((Segment(int(m.group(1)), int(m.group(2)), Path(base)), 0.0))
    keep = visible(segments, now=float("inf"))  # a copy has no writer: every merge is mature
    return sorted(other + [by_name[b] for b in keep])


def _open_parquet_dir(directory: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    if not directory.is_dir():
        raise FileNotFoundError(f"no data directory or directory of Parquet files at {directory}")
    files = dedupe_segments([str(p) for p in directory.glob("*.parquet")])
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if files:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)  # a view takes no parameters
        con.execute(f"CREATE VIEW {_RAW} AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
    _create_view(con, files)
    return con


def _open_dataset(url: str, storage_options: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    import duckdb
    import fsspec  # type: ignore[import-untyped]
    import pyarrow.dataset as ds  # type: ignore[import-untyped]
    from pyarrow.fs import FSSpecHandler, PyFileSystem  # type: ignore[import-untyped]

    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    files = dedupe_segments([p for p in fs.find(root) if p.endswith(".parquet")])
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if files:
        filesystem = PyFileSystem(FSSpecHandler(fs))
        schemas = [ds.dataset(f, format="parquet", filesystem=filesystem).schema for f in files]
        dataset = ds.dataset(files, format="parquet", filesystem=filesystem, schema=_unify(schemas))
        con.register(_RAW, dataset)  # scanned lazily: projections and simple filters pushed down
    _create_view(con, files)
    return con


def _unify(schemas: list[Any]) -> Any:
    """One schema over files written by different releases: the union of their columns (a
    segment lacking a column reads it as NULL); the first file's type wins for a column."""
    import pyarrow as pa  # type: ignore[import-untyped]

    fields: dict[str, Any] = {}
    for schema in schemas:
        for f in schema:
            fields.setdefault(f.name, f.with_nullable(True))
    return pa.schema(list(fields.values()))


def _create_view(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """The ``requests`` view: every current log column, in the writer's order (NULL where no
    file has it), then any other column the files have; JSON columns typed JSON."""
    present = [r[0] for r in con.execute(f"DESCRIBE {_RAW}").fetchall()] if files else []
    have = set(present)
    cols = []
    for name, typ, _ in COLUMNS:
        if name not in have:
            cols.append(f'CAST(NULL AS {typ}) AS "{name}"')
        elif typ in ("JSON", "TIMESTAMPTZ"):
            cols.append(f'CAST("{name}" AS {typ}) AS "{name}"')
        else:
            cols.append(f'"{name}"')
    known = {name for name, _, _ in COLUMNS}
    cols += [f'"{name}"' for name in present if name not in known]
    source = f"FROM {_RAW}" if files else "LIMIT 0"
    con.execute(f"CREATE OR REPLACE VIEW {VIEW} AS SELECT {', '.join(cols)} {source}")


def _record_data_dir(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Record ``data_dir`` as the connection's data directory (what ``open_log`` records and
    :func:`~llmgw_kernel.log.reader.data_dir_of` reads): replay loads the key history from it."""
    root = str(data_dir.resolve()).replace("'", "''")
    con.execute(f"CREATE OR REPLACE TEMP MACRO llmgw_data_dir() AS '{root}'")
