"""The request log: writer (batched Parquet segments) and reader (DuckDB views)."""

from .reader import open_log
from .record import RequestRecord
from .writer import LogWriter

__all__ = ["LogWriter", "RequestRecord", "open_log"]
