"""What every page of one dashboard server shares: the log's query cache, the gateway's live
state, the live policy file, and the options of the filter bar.

Made once per server (:func:`.pages.build_apps`), handed to every page of every session.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .filters import Filters
from .live import LiveState
from .queries import LogQueries
from .store import OverviewStore

#: filter name -> SQL of its options in the window (routes come from the policy, not the log)
_OPTION_SQL = {
    "team": "team", "key": "key_id", "user": "end_user", "model": "upstream_model", "provider": "provider",
}  # fmt: skip
MAX_OPTIONS = 200


class Context:
    """Shared by every page and session of one dashboard server."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        policy_path: str | os.PathLike[str] | None = None,
        gateway_url: str | None = None,
        queries: LogQueries | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.policy_path = Path(policy_path) if policy_path else None
        self.queries = queries or LogQueries(data_dir)
        self.live = LiveState(gateway_url)
        # the dashboard's overview rolls up the log's sealed segments in the background (rollups.py)
        self.overview = OverviewStore(data_dir, queries=self.queries, build_rollups=True)
        self._policy_routes: tuple[tuple[int, int], tuple[str, ...] | None] | None = None

    def close(self) -> None:
        self.overview.stop()
        self.queries.close()

    def routes(self) -> tuple[str, ...]:
        """The live policy's routes: from the gateway, else the policy file, else the routes
        of the log that routing served (a request for an unknown model never names a route)."""
        snap = self.live.snapshot()
        if snap is not None and snap.routes:
            return snap.routes
        routes = self._file_routes()
        if routes is not None:
            return routes
        return self.queries.answer(("routes-served",), _served_routes)

    def _file_routes(self) -> tuple[str, ...] | None:
        """The policy file's routes (None: no file, or not a valid policy), read again only
        when the file changed (every page asks; parsing and validating it is ~0.1 s)."""
        if self.policy_path is None:
            return None
        try:
            st = self.policy_path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if self._policy_routes is not None and self._policy_routes[0] == stamp:
            return self._policy_routes[1]
        from ..policy.load import PolicyError, load_policy

        try:
            routes: tuple[str, ...] | None = tuple(sorted(load_policy(self.policy_path).routes))
        except PolicyError:
            routes = None
        self._policy_routes = (stamp, routes)
        return routes

    def options(self, filters: Filters) -> dict[str, list[str]]:
        """Filter name -> its choices: the policy's routes, and the values seen in the window."""
        window = filters.with_(**dict.fromkeys(_OPTION_SQL, None), route=None)

        def compute(con: Any, now: float) -> dict[str, list[str]]:
            where, params = window.where(now)
            lists = ", ".join(f"list(DISTINCT {column})" for column in _OPTION_SQL.values())
            row = con.execute(f"SELECT {lists} FROM requests WHERE {where}", params).fetchone()
            return {name: sorted(v for v in values or () if v is not None)[:MAX_OPTIONS]
                    for name, values in zip(_OPTION_SQL, row, strict=True)}  # fmt: skip

        found = self.queries.answer(("options", window), compute, window)
        return {"route": list(self.routes()), **found}


def _served_routes(con: Any, now: float) -> tuple[str, ...]:
    rows = con.execute("SELECT DISTINCT route FROM requests WHERE target IS NOT NULL ORDER BY 1").fetchall()
    return tuple(r[0] for r in rows if r[0] is not None)


__all__ = ["Context"]
