"""`llmgw serve --workers N`: how connections spread over the workers, and what it costs.

Starts `llmgw serve --workers N --no-dashboards` on a fresh data directory (the built-in `demo`
route, or with `--semantic` a route with the semantic cache), sends requests from client
processes — keep-alive connections, or a new connection per request (`--fresh`) — and reports
requests/s, CPU seconds of the supervisor and workers per request, and how many requests each
worker served (from the log: each worker writes its own replica series). With `--semantic`
the prompts repeat (`--distinct` of them), so the semantic hits per worker show what a cache
per replica costs against one shared cache.

    .venv/bin/python benchmarks/workers.py --workers 2 --clients 4 --requests 500 [--fresh] [--semantic]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds, loadavg  # noqa: E402
from scaffold import ServeGroup, free_port, health_ok  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def policy(semantic: bool) -> str:
    route: dict[str, object] = {"targets": [{"provider": "demo", "model": "demo-echo"}]}
    if semantic:
        route["cache"] = {"semantic": {"threshold": 0.9, "ttl_s": 3600}, "namespace": []}
    return json.dumps({"providers": {"demo": {"kind": "demo"}}, "routes": {"demo": route}, "log": {"flush_ms": 200}})


def client(args: tuple[int, int, int, bool, int]) -> int:
    port, n, seed, fresh, distinct = args
    conn = None
    ok = 0
    for i in range(n):
        if conn is None or fresh:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        prompt = f"question number {(seed * 7919 + i) % distinct}" if distinct else f"hello {seed} {i}"
        body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": prompt}]})
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        ok += resp.status == 200
        if fresh:
            conn.close()
    return ok


def per_replica(data_dir: Path) -> dict[str, dict[str, int]]:
    import duckdb

    from llmgw_kernel.log.segments import list_segments, log_dir, split_live

    con = duckdb.connect()
    out: dict[str, dict[str, int]] = {}
    live, _ = split_live(list_segments(log_dir(data_dir)))  # merged segments' inputs not counted twice
    for s in live:
        if s.lo > 0:
            for cache, n in con.execute(
                "SELECT coalesce(cache, '-'), count(*) FROM read_parquet(?) GROUP BY 1", [str(s.path)]
            ).fetchall():
                counts = out.setdefault(s.replica or "-", {})
                counts[cache] = counts.get(cache, 0) + n
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=500, help="per client")
    p.add_argument("--fresh", action="store_true", help="a new connection per request")
    p.add_argument("--semantic", action="store_true")
    p.add_argument("--distinct", type=int, default=0, help="distinct prompts (repeats: cache hits)")
    p.add_argument("--warmup-s", type=float, default=0.0, help="wait after start (the embedding model loads)")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmgw-workers-bench-"))
    (tmp / "policy.yaml").write_text(policy(a.semantic))
    port = free_port()
    cmd = [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", str(tmp / "policy.yaml"),
           "--data-dir", str(tmp / "data"), "--no-dashboards", "--log-level", "warning"]  # fmt: skip
    cmd += ["--workers", str(a.workers)]
    gw = ServeGroup(cmd, {**os.environ, "PYTHONPATH": str(ROOT)}, tmp / "serve.log", a.workers, cwd=tmp)
    try:
        gw.wait_ready(lambda: health_ok(port))
        time.sleep(a.warmup_s)
        pids = gw.pids()
        start = {pid: cpu_seconds(pid) for pid in pids}
        t0 = time.monotonic()
        with multiprocessing.Pool(a.clients) as pool:
            ok = sum(pool.map(client, [(port, a.requests, c, a.fresh, a.distinct) for c in range(a.clients)]))
        wall = time.monotonic() - t0
        by_process = {pid: round(cpu_seconds(pid) - start[pid], 2) for pid in pids if os.path.exists(f"/proc/{pid}")}
        cpu = sum(by_process.values())
    finally:
        gw.stop()
    total = a.clients * a.requests
    print(json.dumps({
        "workers": a.workers, "clients": a.clients, "fresh_connections": a.fresh, "ok": ok, "total": total,
        "req_per_s": round(total / wall, 1), "cpu_us_per_request": round(cpu / total * 1e6),
        "cpu_s_by_process": list(by_process.values()),
        "per_replica": per_replica(tmp / "data"), "loadavg": loadavg(), "exit": gw.proc.returncode,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
