"""How long after its response is a request visible to ``open_log``, under load?

Starts ``llmgw serve`` on a fresh data directory with the built-in offline ``demo`` route,
keeps ``--concurrency`` clients sending chat requests (JSON, every third one streamed) for
``--duration`` seconds, and meanwhile, every ``--every`` seconds, takes the request just
answered and polls a long-lived ``open_log`` connection (every 20 ms) until its row is
there. Prints p50 / p90 / max of response-to-visible and the request rate.

    .venv/bin/python benchmarks/log_visibility.py --concurrency 8 --duration 20
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--every", type=float, default=0.25, help="seconds between sampled requests")
    ap.add_argument("--flush-ms", type=int, default=500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmgw-visibility-"))
    proc, url = start_server(tmp, args.flush_ms)
    last: list[tuple[str, float]] = []
    count = [0]
    stop = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(timeout=10) as http:
            n = 0
            while not stop.is_set():
                n += 1
                body = {"model": "demo", "messages": MSG, "stream": n % 3 == 0}
                r = http.post(url + "/v1/chat/completions", json=body)
                last.append((r.headers["x-request-id"], time.monotonic()))
                count[0] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    con = open_log(tmp / "data")
    delays: list[float] = []
    t_end = time.monotonic() + args.duration
    started, n0 = time.monotonic(), count[0]
    while time.monotonic() < t_end:
        time.sleep(args.every)
        if not last:
            continue
        rid, answered = last[-1]
        while not con.execute("SELECT count(*) FROM requests WHERE request_id = ?", [rid]).fetchone()[0]:
            if time.monotonic() - answered > 30:
                break
            time.sleep(0.02)
        delays.append(time.monotonic() - answered)
    rate = (count[0] - n0) / (time.monotonic() - started)
    stop.set()
    proc.terminate()
    proc.wait(30)
    delays.sort()
    p90 = delays[int(len(delays) * 0.9)]
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; {args.concurrency} clients, {rate:.0f} req/s, flush_ms {args.flush_ms}")
    print(f"visible after: p50 {statistics.median(delays):.2f} s, p90 {p90:.2f} s, max {delays[-1]:.2f} s "
          f"({len(delays)} samples)")  # fmt: skip


if __name__ == "__main__":
    main()
