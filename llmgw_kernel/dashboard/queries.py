"""One DuckDB connection over the request log, shared by every page and session, with a
short-lived cache of answers.

Pages ask questions as ``(name, filters) -> compute(con, now)``; the answer is kept
``ttl_s`` seconds, so ten browser tabs refreshing every few seconds cost one query per
question per ``ttl_s``. An answer over a window that has settled (it ended more than
:data:`~.filters.SETTLE_S` ago: the log only appends, so the answer cannot change) is kept
``settled_ttl_s`` (10 min), up to :data:`MAX_SETTLED` of them: an operator going from page to
page, or back, over an incident's window pays for each question once (the filter options,
shared by every page, after the first page); an answer that also reads up to now (a budget's
burn-down) is not passed its window and stays live. Every aggregation runs in DuckDB (SQL
over the Parquet segments): no page ever pulls the log's rows into Python. DuckDB releases the GIL while it works and
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

    from .filters import Filters

T = TypeVar("T")

#: settled answers kept at once (the oldest is dropped first); each is a few small frames
MAX_SETTLED = 64
#: answers kept at once before the expired ones are swept
MAX_ANSWERS = 512


class LogQueries:
    """Cached answers over the ``requests`` view of one data directory (thread-safe)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        ttl_s: float = 2.0,
        threads: int = 2,
        clock: Callable[[], float] = time.time,
        settled_ttl_s: float = 600.0,
    ) -> None:
        import duckdb

        self.data_dir = data_dir
        self.ttl_s = ttl_s
        self.settled_ttl_s = settled_ttl_s
        self.clock = clock
        config = {"threads": threads, "memory_limit": "768MB"}
        self._con = open_log(data_dir, duckdb.connect(config=config))  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._cache: dict[Hashable, tuple[float, Any]] = {}  # key -> (computed at, answer): live windows
        self._settled: dict[Hashable, tuple[float, Any]] = {}  # the same for settled windows, oldest first

    def answer(
        self,
        key: Hashable,
        compute: Callable[[duckdb.DuckDBPyConnection, float], T],
        window: Filters | None = None,
    ) -> T:
        """``compute(con, now)``, or its answer of less than ``ttl_s`` ago for the same key
        (``settled_ttl_s`` when the answer is over ``window`` and that window has settled)."""
        with self._lock:
            now = self.clock()
            for store, ttl in ((self._cache, self.ttl_s), (self._settled, self.settled_ttl_s)):
                hit = store.get(key)
                if hit is not None and now - hit[0] < ttl:
                    return hit[1]  # type: ignore[no-any-return]
            result = compute(self._con, now)
            if window is not None and window.settled(now):
                self._settled.pop(key, None)
                self._settled[key] = (now, result)
                while len(self._settled) > MAX_SETTLED:
                    del self._settled[next(iter(self._settled))]
                return result
            self._cache[key] = (now, result)
            if len(self._cache) > MAX_ANSWERS:  # old filter combinations nobody looks at any more
                cutoff = now - self.ttl_s
                self._cache = {k: v for k, v in self._cache.items() if v[0] >= cutoff}
            return result

    def close(self) -> None:
        with self._lock:
            self._con.close()


__all__ = ["MAX_ANSWERS", "MAX_SETTLED", "LogQueries"]
