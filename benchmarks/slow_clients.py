"""Slow clients against a real `llmgw serve`: how long do they hold connections, and does a
normal client keep being served meanwhile?

    .venv/bin/python benchmarks/slow_clients.py [--slowloris 400] [--bodies 100] [--header-timeout 10]
        [--body-timeout 20] [--give-up 90]

Starts `llmgw serve` (demo route, no upstream) with the given read deadlines, then opens
``--slowloris`` connections that send request headers one byte per connection per second
(never finishing) and ``--bodies`` connections that send complete headers and 10 bytes of a
1,000-byte body, then nothing. A normal client sends chat requests back to back all along.
Reports when the server closed the slow connections (seconds after they opened) and the
normal client's latency. Connections still open after ``--give-up`` seconds are counted as
held (the behaviour before read deadlines).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICY = "providers: {demo: {kind: demo}}\nroutes: {demo: {targets: [{provider: demo, model: demo-echo}]}}\n"
CHAT = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()


def start(tmp: Path, port: int, header_s: float, body_s: float) -> subprocess.Popen:
    (tmp / "live.yaml").write_text(POLICY)
    cmd = [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", str(tmp / "live.yaml"),
           "--data-dir", str(tmp / "data"), "--no-dashboards", "--log-level", "warning",
           "--header-timeout", str(header_s), "--body-timeout", str(body_s)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("llmgw serve did not start")


def steady(port: int, stop: threading.Event, out: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v1/chat/completions", CHAT, {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t0 if resp.status == 200 else None)
        except OSError:
            out.append(None)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slowloris", type=int, default=400)
    ap.add_argument("--bodies", type=int, default=100)
    ap.add_argument("--header-timeout", type=float, default=10)
    ap.add_argument("--body-timeout", type=float, default=20)
    ap.add_argument("--give-up", type=float, default=90)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = start(Path(tmp), port, args.header_timeout, args.body_timeout)
        try:
            report(port, args)
        finally:
            proc.terminate()
            proc.wait(30)


def report(port: int, args: argparse.Namespace) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 500  # never ends
    body_head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789"
    stop, latencies = threading.Event(), []
    client = threading.Thread(target=steady, args=(port, stop, latencies), daemon=True)
    client.start()
    t0 = time.monotonic()
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.slowloris)]
    bodies = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.bodies)]
    for s in bodies:
        s.sendall(body_head)
    for s in slow + bodies:
        s.setblocking(False)
    closed: dict[socket.socket, float] = {}
    i = 0
    while len(closed) < len(slow) + len(bodies) and time.monotonic() - t0 < args.give_up:
        for s in slow + bodies:
            if s in closed:
                continue
            try:
                if s in slow and i < len(head):
                    s.send(head[i : i + 1])
                while s.recv(65536):
                    pass
                closed[s] = time.monotonic() - t0  # recv returned b"": closed by the server
            except BlockingIOError:
                pass
            except OSError:
                closed[s] = time.monotonic() - t0
        i += 1
        time.sleep(1)
    stop.set()
    client.join(30)
    ok = [x for x in latencies if x is not None]
    print(f"load average {os.getloadavg()[0]:.1f}; deadlines: header {args.header_timeout:g} s, "
          f"body {args.body_timeout:g} s")  # fmt: skip
    for name, group in (("slowloris", slow), ("partial body", bodies)):
        times = sorted(closed[s] for s in group if s in closed)
        held = len(group) - len(times)
        if times:
            print(f"{name}: {len(times)}/{len(group)} closed by the server, after {times[0]:.1f}-{times[-1]:.1f} s "
                  f"(median {statistics.median(times):.1f}); {held} still open after {args.give_up:g} s")  # fmt: skip
        else:
            print(f"{name}: none closed; {held} still open after {args.give_up:g} s")
    if ok:
        q = statistics.quantiles(ok, n=100)
        print(f"normal client meanwhile: {len(ok)} answered, {len(latencies) - len(ok)} failed; "
              f"p50 {q[49] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms, max {max(ok) * 1e3:.1f} ms")  # fmt: skip
    for s in slow + bodies:
        s.close()


if __name__ == "__main__":
    main()
