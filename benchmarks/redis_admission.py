"""What does shared state on Redis cost the gateway per request? (docs/benchmarks.md, "Shared state")

Two measurements, each over ``--rounds`` runs (spread reported):

* **admission** (in process): admit + settle of one request with a key budget, a team budget
  and a key rpm/tpm, ``--n`` times, 16 in flight at a time, through the Redis-backed
  :class:`~llmgw_kernel.state.admission.SharedLimits` and through the in-memory
  :class:`~llmgw_kernel.decisions.limits.Limits`. CPU is this process's own (``process_time``:
  the gateway's side, redis-py included); Redis's own CPU is read from ``/proc`` apart. The
  difference is the CPU Redis-backed admission adds per request (target ≤ 150 µs).
* **gateway** (end to end): ``llmgw serve`` with a keyed policy (a key with a budget, rpm
  and tpm, so every request is admitted and settled) in front of the nginx mock of
  ``benchmarks/proxy_overhead.py``, without and with ``LLMGW_REDIS_URL``; wrk at 16
  connections; CPU µs per request of the server process and requests/s.

The gateway is pinned to CPU 0, Redis, the upstream and the load generator to CPU 1.

    .venv/bin/python benchmarks/redis_admission.py --rounds 3
    .venv/bin/python benchmarks/redis_admission.py --rounds 1 --n 5000 --skip-gateway
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import CLK_TCK, cpu_seconds, cpu_ticks, loadavg  # noqa: E402
from proxy_overhead import WRK_LUA, Proxy, check_proxy, run_load, start_upstream  # noqa: E402
from scaffold import pin, spread, start_redis, stop  # noqa: E402

IN_FLIGHT = 16


def _request_args():
    from llmgw_kernel.decisions.limits import Budget, Rate, Subject
    from llmgw_kernel.policy.model import BudgetLimit, RateLimit

    subject = Subject("k1", "search", None, "gpt-4o-mini")
    budgets = [
        Budget(BudgetLimit(scope="key", name="k1", usd=1e6, window="month"), "k1"),
        Budget(BudgetLimit(scope="team", name="search", usd=1e6, window="day"), "search"),
    ]
    rates = [Rate(RateLimit(scope="key", name="k1", rpm=10**9, tpm=10**12), "k1")]
    return subject, budgets, rates


async def _admission_cpu(url: str | None, n: int) -> float:
    """CPU µs of this process per admit + settle (``url`` None: the in-memory Limits)."""
    from llmgw_kernel.decisions.limits import Limits
    from llmgw_kernel.state.admission import SharedLimits
    from llmgw_kernel.state.client import StateClient
    from llmgw_kernel.state.config import RedisSettings

    subject, budgets, rates = _request_args()
    local = Limits()
    shared = None
    if url is not None:
        # long timeouts: a timeout would switch to the fallback and measure that instead (checked below)
        settings = RedisSettings(command_timeout_ms=10_000, connect_timeout_ms=10_000)
        shared = SharedLimits(StateClient(url, settings), local, "bench", Limits)
        await shared.reseed()

    async def one(i: int) -> None:
        at = time.time()
        rid = f"r{i}"
        if shared is None:
            local.admit(rid, at, subject, budgets, rates, 0.001, 100)
            local.settle(rid, at, 0.0005, 50)
        else:
            await shared.admit(rid, at, subject, budgets, rates, 0.001, 100)
            await shared.settle(rid, at, 0.0005, 50)

    for i in range(200):  # warm up: connections, scripts loaded
        await one(-i - 1)
    t0 = time.process_time()
    for start in range(0, n, IN_FLIGHT):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + IN_FLIGHT))))
    cpu = time.process_time() - t0
    if shared is not None:
        if not shared.client.up or shared.pending:
            raise RuntimeError("Redis stopped answering during the run: the figure would be the fallback's")
        await shared.client.close()
    return 1e6 * cpu / n


def admission_round(url: str, redis_pid: int, n: int) -> dict:
    pin(0)
    local = asyncio.run(_admission_cpu(None, n))
    r0 = cpu_seconds(redis_pid)
    shared = asyncio.run(_admission_cpu(url, n))
    redis_us = 1e6 * (cpu_seconds(redis_pid) - r0) / n
    return {"local_us": round(local, 1), "redis_us": round(shared, 1), "added_us": round(shared - local, 1),
            "redis_server_us": round(redis_us, 1), "loadavg": loadavg()}  # fmt: skip


def gateway_round(url: str, workdir: Path, duration: float, upstream: dict, lua: Path) -> dict:
    out = {}
    for name, redis_url in (("memory", None), ("redis", url)):
        if redis_url:
            os.environ["LLMGW_REDIS_URL"] = redis_url
        else:
            os.environ.pop("LLMGW_REDIS_URL", None)
        proxy = Proxy(workdir / f"proxy-{name}-{time.time_ns()}", upstream, "0", [], keyed=True)
        try:
            check_proxy(proxy)
            target = proxy.base + "/chat/completions"
            run_load("wrk", target, 16, 2, False, "1", lua)  # warm-up
            time.sleep(0.7)
            t0 = cpu_ticks(proxy.pid)
            w = run_load("wrk", target, 16, duration, False, "1", lua)
            time.sleep(0.7)
            cpu_s = (cpu_ticks(proxy.pid) - t0) / CLK_TCK
            out[name] = {"cpu_us_per_req": round(1e6 * cpu_s / max(w["requests"], 1), 1), "rps": w["rps"],
                         "non2xx": w["non2xx"], "errors": w["errors"]}  # fmt: skip
        finally:
            proxy.stop()
    os.environ.pop("LLMGW_REDIS_URL", None)
    out["added_us"] = round(out["redis"]["cpu_us_per_req"] - out["memory"]["cpu_us_per_req"], 1)
    out["loadavg"] = loadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=20_000, help="admissions per in-process run")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of load per gateway run")
    ap.add_argument("--skip-gateway", action="store_true")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-redis-bench-"))
    redis_proc, url = start_redis(workdir, "1")
    upstream_proc = None
    try:
        print(f"# loadavg at start: {loadavg()}", flush=True)
        rounds = [admission_round(url, redis_proc.pid, args.n) for _ in range(args.rounds)]
        for r in rounds:
            print("admission", r, flush=True)
        print("admission CPU µs/request, in memory:", spread([r["local_us"] for r in rounds]))
        print("admission CPU µs/request, Redis:    ", spread([r["redis_us"] for r in rounds]))
        print("added by Redis (gateway side):      ", spread([r["added_us"] for r in rounds]))
        print("redis-server CPU µs/request:        ", spread([r["redis_server_us"] for r in rounds]))
        if args.skip_gateway:
            return
        upstream_proc, upstream = start_upstream("nginx" if shutil.which("nginx") else "python", workdir, "1", 0)
        lua = workdir / "bench.lua"
        lua.write_text(WRK_LUA)
        grounds = [gateway_round(url, workdir, args.duration, upstream, lua) for _ in range(args.rounds)]
        for g in grounds:
            print("gateway", g, flush=True)
        for name in ("memory", "redis"):
            print(f"gateway CPU µs/request, {name}:", spread([g[name]["cpu_us_per_req"] for g in grounds]),
                  "| req/s:", spread([g[name]["rps"] for g in grounds]))  # fmt: skip
        print("gateway CPU added by Redis, µs/request:", spread([g["added_us"] for g in grounds]))
    finally:
        if upstream_proc is not None:
            stop(upstream_proc)
        stop(redis_proc, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
