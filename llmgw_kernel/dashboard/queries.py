"""One DuckDB connection over the request log, shared by every page and session, with a
short-lived cache of answers.

Pages ask questions as ``(name, filters) -> compute(con, now)``; the answer is kept
``ttl_s`` seconds, so ten browser tabs refreshing every few seconds cost one query per
question per ``ttl_s``. Every aggregation runs in DuckDB (SQL over the Parquet segments):
no page ever pulls the log's rows into Python. DuckDB releases the GIL while it works and
runs on ``threads`` threads (default 2): the dashboards live in their own process, so the
proxy only shares CPU cores with them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from ..log.reader import open_log

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")


class LogQueries:
    """Cached answers over the ``requests`` view of one data directory (thread-safe)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        ttl_s: float = 2.0,
        threads: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import duckdb

        self.data_dir = data_dir
        self.ttl_s = ttl_s
        self.clock = clock
        config = {"threads": threads, "memory_limit": "768MB"}
        self._con = open_log(data_dir, duckdb.connect(config=config))  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._cache: dict[Hashable, tuple[float, Any]] = {}

    def answer(self, key: Hashable, compute: Callable[[duckdb.DuckDBPyConnection, float], T]) -> T:
        """``compute(con, now)``, or its answer of less than ``ttl_s`` ago for the same key."""
        with self._lock:
            now = self.clock()
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]  # type: ignore[no-any-return]
            result = compute(self._con, now)
            self._cache[key] = (now, result)
            if len(self._cache) > 512:  # old filter combinations nobody looks at any more
                cutoff = now - self.ttl_s
                self._cache = {k: v for k, v in self._cache.items() if v[0] >= cutoff}
            return result

    def close(self) -> None:
        with self._lock:
            self._con.close()


__all__ = ["LogQueries"]
