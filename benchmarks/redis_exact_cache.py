"""What does the exact cache shared through Redis cost the gateway per lookup and per store?
(docs/benchmarks.md, "Shared exact cache on Redis"; docs/cache.md)

The cache service exactly as the gateway runs it (:class:`~llmgw_kernel.cache.service.CacheService`:
``lookup`` and ``store`` of prepared requests), once with the exact entries in this process and
once shared through a real redis-server (``CacheService.share``), over ``--rounds`` runs:

* **store**: ``--n`` fresh answers of ``--body-bytes`` each, ``--in-flight`` at a time;
* **lookup, hit**: ``--n`` lookups of stored keys; **lookup, miss**: ``--n`` of absent keys.

CPU is this process's own (``process_time``: the gateway's side, the pipelined connection and
the reply parsing included), per operation; Redis's own CPU is read from ``/proc`` apart. The
added figure is shared minus in memory. Latency: wall time of one lookup and one store with
nothing else in flight (a round trip on the loopback), median and p99 of ``--n`` // 10. Memory:
Redis's ``used_memory`` grown per stored entry of ``--body-bytes``.

With ``--gateway``, also end to end: ``llmgw serve`` (CPU 0) with an exact cache on a ``demo``
route, wrk (CPU 1, 8 connections, ``--duration`` s) sending one request over and over — every
request a **hit** — and the same with ``x-llmgw-cache: no-cache`` — every request a **store**
(not read) — once with the cache in the process and once with ``LLMGW_REDIS_URL``: the server
process's CPU µs per request (``/proc``), requests/s and p99.

The benchmark is pinned to CPU 0, Redis to CPU 1.

    .venv/bin/python benchmarks/redis_exact_cache.py --rounds 3 [--gateway]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds, loadavg  # noqa: E402
from proxy_overhead import free_port, http_get  # noqa: E402
from scaffold import ServeGroup, pin, spread, start_redis, stop  # noqa: E402

GATEWAY_POLICY = """
providers: {d: {kind: demo}}
routes: {m: {targets: [{provider: d, model: demo-echo}]}}
cache: {exact: {ttl_s: 3600, max_entries: 100000}}
log: {flush_ms: 200}
"""

WRK = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
if os.getenv("BENCH_NO_CACHE") == "1" then wrk.headers["x-llmgw-cache"] = "no-cache" end
wrk.body = '{"model": "m", "messages": [{"role": "user", "content": "the same question"}]}'
done = function(summary, latency, requests)
  io.write(string.format('BENCH %d %d %d %d\\n', summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(99)))
end
"""


def _policy() -> Any:
    from llmgw_kernel import load_policy

    return load_policy({
        "providers": {"d": {"kind": "demo"}},
        "cache": {"exact": {"ttl_s": 600, "max_entries": 1_000_000}},
        "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
    })  # fmt: skip


def _requests(svc: Any, policy: Any, tag: str, n: int) -> list[tuple[Any, Any]]:
    """``n`` prepared (query, record) pairs, prompts ``tag 0`` … (made before any timing)."""
    from llmgw_kernel.log.record import RequestRecord

    out = []
    now = time.time()
    for i in range(n):
        rec = RequestRecord(f"req_{tag}_{i}", now, "/v1/chat/completions")
        rec.route, rec.target, rec.outcome = "m", "d/echo", "ok"
        rec.usage = {"prompt_tokens": 12, "completion_tokens": 40}
        body = {"messages": [{"role": "user", "content": f"{tag} {i}"}]}
        out.append((svc.prepare(policy.cache_for("m"), rec, body, None, None), rec))
    return out


def _fresh(reqs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The same queries with new records (arriving now), for a second pass over the keys."""
    from llmgw_kernel.log.record import RequestRecord

    out = []
    for q, old in reqs:
        rec = RequestRecord(old.request_id + "_again", time.time(), "/v1/chat/completions")
        rec.route = "m"
        out.append((q, rec))
    return out


def _used_memory(url: str | None) -> int:
    if url is None:
        return 0
    import redis

    return int(redis.Redis.from_url(url).info("memory")["used_memory"])


async def _cpu_per_op(reqs: list[tuple[Any, Any]], op: Any, in_flight: int) -> float:
    t0 = time.process_time()
    for start in range(0, len(reqs), in_flight):
        await asyncio.gather(*(op(q, rec) for q, rec in reqs[start : start + in_flight]))
    return 1e6 * (time.process_time() - t0) / len(reqs)


async def _wall(reqs: list[tuple[Any, Any]], op: Any) -> tuple[float, float]:
    times = []
    for q, rec in reqs:
        t0 = time.perf_counter()
        await op(q, rec)
        times.append(1e6 * (time.perf_counter() - t0))
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


async def _measure(url: str | None, n: int, body: bytes, in_flight: int, tag: str) -> dict[str, float]:
    """CPU µs per store / hit / miss (and wall latency) of one cache service."""
    from llmgw_kernel.cache.service import CacheService
    from llmgw_kernel.state.client import StateClient
    from llmgw_kernel.state.config import RedisSettings

    policy = _policy()
    home = Path(tempfile.mkdtemp(prefix="llmgw-xc-bench-"))
    svc = CacheService(home)
    if url is not None:  # long timeouts: a timeout would measure the fallback (checked below)
        client = StateClient(url, RedisSettings(command_timeout_ms=10_000, connect_timeout_ms=10_000))
        svc.share(client, home, lambda: None, lambda: policy)  # no log there: nothing to seed

    async def store(q: Any, rec: Any) -> None:
        await svc.store(q, rec, body)

    async def lookup(q: Any, rec: Any) -> None:
        await svc.lookup(q, rec)

    warm = _requests(svc, policy, f"{tag}-warm", 500)
    await _cpu_per_op(warm, store, in_flight)
    await _cpu_per_op(_fresh(warm), lookup, in_flight)
    stored = _requests(svc, policy, f"{tag}-s", n)
    absent = _requests(svc, policy, f"{tag}-a", n)
    used = _used_memory(url)
    out = {"store_us": await _cpu_per_op(stored, store, in_flight)}
    if url is not None:  # what one entry of this answer size holds in Redis (values, keys, the order set)
        out["redis_bytes_per_entry"] = (_used_memory(url) - used) / n
    hits_before = svc.hits
    again = _fresh(stored)
    out["hit_us"] = await _cpu_per_op(again, lookup, in_flight)
    if svc.hits - hits_before != n:
        raise RuntimeError(f"expected {n} hits, got {svc.hits - hits_before}: the figure would not be a hit's")
    out["miss_us"] = await _cpu_per_op(absent, lookup, in_flight)
    k = max(n // 10, 10)
    lat = _requests(svc, policy, f"{tag}-l", k)
    out["store_p50_us"], out["store_p99_us"] = await _wall(lat, store)
    out["hit_p50_us"], out["hit_p99_us"] = await _wall(_fresh(lat), lookup)
    if svc.shared is not None:
        if not svc.shared.client.up:
            raise RuntimeError("Redis stopped answering during the run: the figures would be the fallback's")
        await svc.shared.client.close()
    svc.close()
    return {k: round(v, 1) for k, v in out.items()}


def one_round(url: str, redis_pid: int, n: int, body_bytes: int, in_flight: int, i: int) -> dict[str, Any]:
    pin(0)
    body = b'{"choices":[{"message":{"content":"' + b"x" * max(body_bytes - 40, 0) + b'"}}]}'
    local = asyncio.run(_measure(None, n, body, in_flight, f"mem{i}"))
    r0 = cpu_seconds(redis_pid)
    shared = asyncio.run(_measure(url, n, body, in_flight, f"redis{i}"))
    # the shared run made 3n + 2 * 500 + 2k operations in Redis; per operation, roughly
    ops = 3 * n + 1000 + 2 * max(n // 10, 10)
    return {
        "memory": local, "redis": shared,
        "added": {k: round(shared[k] - local[k], 1) for k in ("store_us", "hit_us", "miss_us")},
        "redis_server_us_per_op": round(1e6 * (cpu_seconds(redis_pid) - r0) / ops, 1), "loadavg": loadavg(),
    }  # fmt: skip


def _serve(workdir: Path, redis_url: str | None) -> tuple[ServeGroup, int]:
    port = free_port()
    (workdir / "policy.yaml").write_text(GATEWAY_POLICY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMGW_")}
    if redis_url:
        env["LLMGW_REDIS_URL"] = redis_url
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--policy", str(workdir / "policy.yaml"), "--data-dir", str(workdir / "data"),
           "--log-level", "warning"]  # fmt: skip
    gw = ServeGroup(cmd, env, workdir / "serve.log", cwd=workdir)

    def health() -> bool:
        try:
            return http_get(port, "/health", 0.5)[0] == 200
        except OSError:
            return False

    gw.wait_ready(health, timeout=60)
    return gw, port


def _wrk(port: int, lua: Path, duration: float, no_cache: bool) -> dict[str, float]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{max(1, round(duration))}s", "--latency", "-s", str(lua),
           f"http://127.0.0.1:{port}/v1/chat/completions"]  # fmt: skip
    env = {**os.environ, "BENCH_NO_CACHE": "1" if no_cache else "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 60).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    requests, duration_us, errors, p99 = (int(x) for x in line.split()[1:])
    if errors:
        raise RuntimeError(f"{errors} failed requests: the figures would not be the cache's")
    return {"requests": requests, "rps": round(requests / (duration_us / 1e6)), "p99_ms": round(p99 / 1000, 2)}


def gateway_round(url: str, duration: float) -> dict[str, Any]:
    """Server CPU µs per request, hits and stores, cache in memory vs on Redis."""
    out: dict[str, Any] = {}
    for where, redis_url in (("memory", None), ("redis", url)):
        workdir = Path(tempfile.mkdtemp(prefix=f"llmgw-xc-{where}-"))
        lua = workdir / "bench.lua"
        lua.write_text(WRK)
        gw, port = _serve(workdir, redis_url)
        try:
            for kind, no_cache in (("hit", False), ("store", True)):
                _wrk(port, lua, 2, no_cache)  # warm-up
                t0 = gw.cpu()
                w = _wrk(port, lua, duration, no_cache)
                cpu_s = gw.cpu() - t0
                out[f"{where}_{kind}"] = {**w, "cpu_us_per_req": round(1e6 * cpu_s / w["requests"], 1)}
        finally:
            gw.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    for kind in ("hit", "store"):
        added = out[f"redis_{kind}"]["cpu_us_per_req"] - out[f"memory_{kind}"]["cpu_us_per_req"]
        out[f"added_{kind}_us"] = round(added, 1)
    out["loadavg"] = loadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=10_000, help="operations of each kind per run")
    ap.add_argument("--body-bytes", type=int, default=1024, help="size of each stored answer")
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--gateway", action="store_true", help="also end to end through llmgw serve and wrk")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds of load per gateway run")
    ap.add_argument("--skip-in-process", action="store_true")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-xc-redis-"))
    redis_proc, url = start_redis(workdir, "1")
    try:
        print(f"# loadavg at start: {loadavg()}", flush=True)
        if args.gateway:
            grounds = [gateway_round(url, args.duration) for _ in range(args.rounds)]
            for g in grounds:
                print("gateway", g, flush=True)
            for key in ("memory_hit", "redis_hit", "memory_store", "redis_store"):
                print(f"gateway {key:12} CPU µs/req:", spread([g[key]["cpu_us_per_req"] for g in grounds]),
                      "| req/s:", spread([g[key]["rps"] for g in grounds]),
                      "| p99 ms:", spread([g[key]["p99_ms"] for g in grounds]))  # fmt: skip
            for kind in ("hit", "store"):
                print(f"gateway CPU added by Redis per {kind}:", spread([g[f"added_{kind}_us"] for g in grounds]))
        if args.skip_in_process:
            return
        rounds = [
            one_round(url, redis_proc.pid, args.n, args.body_bytes, args.in_flight, i) for i in range(args.rounds)
        ]
        for r in rounds:
            print("round", r, flush=True)
        for what in ("store_us", "hit_us", "miss_us"):
            print(f"{what:9} CPU µs/op in memory:", spread([r["memory"][what] for r in rounds]))
            print(f"{what:9} CPU µs/op on Redis: ", spread([r["redis"][what] for r in rounds]))
            print(f"{what:9} added by Redis:     ", spread([r["added"][what] for r in rounds]))
        for what in ("store_p50_us", "store_p99_us", "hit_p50_us", "hit_p99_us"):
            print(f"{what:12} wall µs, Redis:", spread([r["redis"][what] for r in rounds]))
        print("Redis bytes per entry:", spread([r["redis"]["redis_bytes_per_entry"] for r in rounds]))
        print("redis-server CPU µs/op:", spread([r["redis_server_us_per_op"] for r in rounds]))
    finally:
        stop(redis_proc, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
