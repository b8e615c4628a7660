"""Hung-up dashboard page loads: how many Panel sessions they leave, for how long, and the memory.

A Panel server (``PanelThread``, as the dashboard process runs it, the environment's
``LLMGW_DASHBOARD_*`` session limits) in this process, over an empty data directory; ``--loads``
clients at once ask for ``/overview`` and close the connection after its first bytes. Prints
the statuses they got, the most sessions that existed at once, how long after the burst the last
one was discarded, and this process's RSS before, at the peak and after (MB).

    .venv/bin/python benchmarks/dashboard_sessions.py --loads 30
    LLMGW_DASHBOARD_MAX_SESSIONS=10 .venv/bin/python benchmarks/dashboard_sessions.py --loads 30
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import httpx

from llmgw_kernel.dashboard.panel_thread import PanelThread


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--watch", type=float, default=90.0, help="give up waiting after this many seconds")
    args = parser.parse_args()
    started = threading.Event()
    server = PanelThread(tempfile.mkdtemp(), ["*"], lambda port, error: started.set())
    server.start()
    assert started.wait(120) and server.port is not None, "the dashboard server did not start"
    url = f"http://127.0.0.1:{server.port}/overview"

    def sessions() -> int:
        return sum(len(list(c.sessions)) for c in server._server._tornado._applications.values())

    httpx.get(url, timeout=120)  # one whole page: imports and caches warm
    deadline = time.monotonic() + args.watch
    while sessions() and time.monotonic() < deadline:
        time.sleep(0.2)
    before = rss_mb()
    codes: list[int] = []

    def hang_up(i: int) -> None:
        with httpx.stream("GET", f"{url}?team=t{i}", timeout=120) as r:
            codes.append(r.status_code)
            next(r.iter_raw(), None)

    threads = [threading.Thread(target=hang_up, args=(i,)) for i in range(args.loads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    burst = time.monotonic() - t0
    t1 = time.monotonic()
    peak_n, peak_rss = 0, before
    while time.monotonic() - t1 < args.watch:
        n = sessions()
        peak_n, peak_rss = max(peak_n, n), max(peak_rss, rss_mb())
        if n == 0:
            break
        time.sleep(0.2)
    gone = time.monotonic() - t1
    print(f"loads {args.loads} in {burst:.1f} s: statuses {dict(sorted((c, codes.count(c)) for c in set(codes)))}")
    print(f"sessions at once: {peak_n}; left {sessions()}, the last discarded {gone:.1f} s after the burst")
    print(f"RSS MB: before {before:.0f}, peak {peak_rss:.0f} (+{peak_rss - before:.0f}), after {rss_mb():.0f}")
    server.stop()


if __name__ == "__main__":
    main()
