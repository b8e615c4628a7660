"""CPU seconds of a dashboard page's queries, in process, over a request log.

Runs a page's data module (``cache_data.cache``, ``cost_data.cost``, ...) over the log's whole
time range, each run with a fresh ``Context`` (a fresh DuckDB connection on 2 threads, as the
dashboard process opens it, so no answer is cached), the ``requests`` view opened first, and
prints the process's CPU seconds (all threads) per run (the first run of a process also pays
for DuckDB's and pandas' first use: compare the runs after it). The server side of a page alone: for an
A/B of the SQL, run it from inside each side's worktree (``PYTHONPATH=$PWD``; docs/benchmarks.md,
"A/B pitfall").

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dashboard_page_queries.py --data-dir D --runs 3 --pages cache,cost
"""

from __future__ import annotations

import argparse
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fills() -> dict[str, Callable[..., Any]]:
    from llmgw_kernel.dashboard.cache_data import cache
    from llmgw_kernel.dashboard.cost_data import cost

    return {"cache": cache, "cost": cost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="the log's data directory")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pages", default="cache,cost", help="comma-separated: cache, cost")
    args = ap.parse_args()

    from llmgw_kernel import open_log
    from llmgw_kernel.dashboard.context import Context
    from llmgw_kernel.dashboard.filters import Filters

    con = open_log(args.data_dir)
    row = con.execute("SELECT epoch(min(ts)), epoch(max(ts)) + 1 FROM requests").fetchone()
    con.close()
    assert row is not None and row[0] is not None, f"{args.data_dir}: no rows"
    lo, hi = row
    filters = Filters(since=float(lo), until=float(hi))
    fills = _fills()
    taken: dict[str, list[float]] = {name: [] for name in args.pages.split(",")}
    for _ in range(args.runs):
        for name, runs in taken.items():
            ctx = Context(args.data_dir)
            ctx.queries.answer(("open",), lambda c, _now: c.execute("SELECT 1 FROM requests LIMIT 1").fetchall())
            before = _cpu_s()
            fills[name](ctx, filters)
            runs.append(_cpu_s() - before)
            ctx.close()
    for name, runs in taken.items():
        print(f"{name}: " + " / ".join(f"{s:.3f}" for s in runs) + " CPU s")


if __name__ == "__main__":
    main()
