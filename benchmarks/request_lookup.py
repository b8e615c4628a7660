"""What does the request page's lookup cost over a large log? (``/request?id=...``, issue 14)

Times :func:`llmgw_kernel.dashboard.request_data.find` in this process: CPU seconds (user +
system of the process, DuckDB's threads included) per lookup, each on a fresh DuckDB
connection configured as the dashboard's (2 threads, 768 MB; nothing cached between runs),
for three ids in turn, alternated run by run: the gateway id of the log's middle row
(``found``), that row's id as a client's id would be looked up if no gateway id matched
(``missing``: an id in no row, which also reads the log's range), and a hostile one
(``hostile``: quotes and SQL, matched literally: no row).

    .venv/bin/python benchmarks/request_lookup.py --data-dir DIR --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="a data directory with a request log")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    import duckdb

    from llmgw_kernel import open_log
    from llmgw_kernel.dashboard.request_data import find

    con = open_log(args.data_dir)
    n = con.execute("SELECT count(*) FROM requests").fetchone()[0]  # type: ignore[index]
    sql = "SELECT request_id FROM requests ORDER BY ts, request_id LIMIT 1 OFFSET $n"
    middle = con.execute(sql, {"n": n // 2}).fetchone()[0]  # type: ignore[index]
    con.close()
    ids = {"found": middle, "missing": "req_not_in_the_log", "hostile": "x' OR '1'='1' --"}
    print(f"log: {args.data_dir} ({n:,} rows); load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    cpu: dict[str, list[float]] = {name: [] for name in ids}
    for _ in range(args.runs):
        for name, asked in ids.items():
            con = open_log(args.data_dir, duckdb.connect(config={"threads": 2, "memory_limit": "768MB"}))
            t0 = time.process_time()
            data = find(con, asked)
            cpu[name].append(time.process_time() - t0)
            con.close()
            assert data.found == (name == "found"), (name, data)
    for name, values in cpu.items():
        print(f"{name:<8} CPU s median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
