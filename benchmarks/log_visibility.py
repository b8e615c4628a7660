"""How long after its response is a request visible to ``open_log``, under load?

Starts ``llmgw serve`` on a fresh data directory with the built-in offline ``demo`` route,
keeps ``--concurrency`` clients (in another process) sending chat requests (JSON, every
third one streamed) for ``--duration`` seconds, and meanwhile, every ``--every`` seconds,
sends one request itself and polls a long-lived ``open_log`` connection (every 20 ms, so
the figure includes the query's own time) until its row is there. Prints p50 / p90 / max
of response-to-visible and the request rate.

    .venv/bin/python benchmarks/log_visibility.py --concurrency 8 --duration 20
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmgw_kernel import open_log

MSG = [{"role": "user", "content": "visibility"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, flush_ms: int) -> tuple[subprocess.Popen, str]:
    policy = {
        "providers": {"demo": {"kind": "demo"}},
        "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
        "log": {"flush_ms": flush_ms},
    }
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--no-dashboards",
         "--policy", str(tmp / "policy.yaml"), "--data-dir", str(tmp / "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("llmgw serve did not start")


def load(url: str, concurrency: int, seconds: float, counter: Any) -> None:
    """The background load, in its own process (so it does not compete with the sampler)."""
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            n = 0
            while time.monotonic() < stop:
                n += 1
                http.post(url + "/v1/chat/completions", json={"model": "demo", "messages": MSG, "stream": n % 3 == 0})
                with counter.get_lock():
                    counter.value += 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--every", type=float, default=0.25, help="seconds between sampled requests")
    ap.add_argument("--flush-ms", type=int, default=500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmgw-visibility-"))
    proc, url = start_server(tmp, args.flush_ms)
    counter = multiprocessing.Value("l", 0)
    loader = multiprocessing.Process(target=load, args=(url, args.concurrency, args.duration, counter))
    loader.start()
    con = open_log(tmp / "data")
    delays: list[float] = []  # response -> the query that found the row returned
    seen: list[float] = []  # response -> that query started (the row was in a segment by then)
    query_s: list[float] = []
    http = httpx.Client(timeout=10)
    t_end = time.monotonic() + args.duration
    while time.monotonic() < t_end:
        time.sleep(args.every)
        r = http.post(url + "/v1/chat/completions", json={"model": "demo", "messages": MSG})
        rid, answered = r.headers["x-request-id"], time.monotonic()
        while True:
            started = time.monotonic()
            found = con.execute("SELECT count(*) FROM requests WHERE request_id = ?", [rid]).fetchone()[0]
            query_s.append(time.monotonic() - started)
            if found or started - answered > 30:
                break
            time.sleep(0.02)
        delays.append(time.monotonic() - answered)
        seen.append(started - answered)
    loader.join()
    rate = counter.value / args.duration
    proc.terminate()
    proc.wait(30)

    def spread(values: list[float]) -> str:
        values = sorted(values)
        p90 = values[int(len(values) * 0.9)]
        return f"p50 {statistics.median(values):.2f} s, p90 {p90:.2f} s, max {values[-1]:.2f} s"

    load_avg = os.getloadavg()[0]
    print(f"load average {load_avg:.2f}; {args.concurrency} clients, {rate:.0f} req/s, flush_ms {args.flush_ms}")
    print(f"found by a query that returned after: {spread(delays)} ({len(delays)} samples)")
    print(f"  ... that started after (the row was in a segment): {spread(seen)}")
    print(f"  one query `WHERE request_id = ?` over the whole log: {spread(query_s)}")


if __name__ == "__main__":
    main()
