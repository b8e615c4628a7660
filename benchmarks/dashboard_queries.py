"""CPU seconds of the routing and overview pages' server side over a request log, in process.

No browser, no Panel: per run, a fresh dashboard context (its own DuckDB connection on one
thread, as the dashboard's, so nothing is cached between runs) answers the routing page's
question (``routing_data.routing``: routes, target shares, per-target attempts and latency)
and another fresh one the overview's (``OverviewStore.overview``), over the log's whole time
range (the window of ``benchmarks/dashboard_pages.py``). Where the log has per-segment rollups
(``<data-dir>/dashboard-cache/``, written by a dashboard process that ran over it, or by
``--build``) both read them for the window's whole minutes; ``LLMGW_DASHBOARD_CACHE=off``
measures a log without them. For an A/B, run it from inside each checkout
(``cd <tree> && PYTHONPATH=$PWD .venv/bin/python <this script>``: the checkout's own modules).
``--threads 2`` runs DuckDB on the dashboard process's two threads (CPU s of all of them).

    .venv/bin/python benchmarks/dashboard_queries.py --data-dir /tmp/h14r/log1m --runs 5
    LLMGW_DASHBOARD_CACHE=off .venv/bin/python benchmarks/dashboard_queries.py --data-dir /tmp/h14r/log1m
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path


def _bounds(data_dir: Path) -> tuple[float, float]:
    import duckdb

    from llmgw_kernel.log.reader import open_log

    con = open_log(data_dir, duckdb.connect(config={"threads": 1}))
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()  # type: ignore[misc]
    con.close()
    return lo.replace(tzinfo=UTC).timestamp(), hi.replace(tzinfo=UTC).timestamp() + 1


def run(data_dir: Path, runs: int, threads: int = 1) -> dict[str, list[float]]:
    from llmgw_kernel.dashboard.context import Context
    from llmgw_kernel.dashboard.filters import Filters
    from llmgw_kernel.dashboard.queries import LogQueries
    from llmgw_kernel.dashboard.routing_data import routing

    since, until = _bounds(data_dir)
    filters = Filters(since=since, until=until)
    out: dict[str, list[float]] = {"routing": [], "overview": []}
    for _ in range(runs):
        for name in ("routing", "overview"):
            ctx = Context(data_dir, queries=LogQueries(data_dir, threads=threads, clock=lambda: until + 3600))
            try:
                t0 = time.process_time()
                if name == "routing":
                    routing(ctx, filters)
                else:
                    ctx.overview.overview(filters=filters)
                out[name].append(time.process_time() - t0)
            finally:
                ctx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="DuckDB threads (the dashboard process uses 2)")
    ap.add_argument("--build", action="store_true", help="roll up the log's sealed segments first (dashboard-cache/)")
    args = ap.parse_args()
    if args.build:
        import duckdb

        from llmgw_kernel.dashboard.rollups import Rollups

        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
        t0 = time.process_time()
        built = Rollups(args.data_dir).build_missing(con, time.time())
        print(f"rolled up {built} segments: {time.process_time() - t0:.3f} CPU s")
        con.close()
    load = os.getloadavg()[0]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{args.data_dir}; {stamp}; load {load:.1f}; cache {os.environ.get('LLMGW_DASHBOARD_CACHE', 'on')}")
    for name, cpu in run(args.data_dir, args.runs, args.threads).items():
        print(f"{name}: CPU s {' / '.join(f'{c:.3f}' for c in cpu)} (median {statistics.median(cpu):.3f})")
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
