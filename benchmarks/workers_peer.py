"""`llmgw serve --workers N` on the peer harness's nginx mock: CPU per request first, then requests/s.

Three configurations, each started fresh every round (order rotated between rounds):

* ``w1`` — ``--workers 1``, state in memory (no Redis);
* ``w1-redis`` — ``--workers 1`` with ``LLMGW_REDIS_URL`` (admission and settlement in Redis);
* ``w2-redis`` — ``--workers 2`` with ``LLMGW_REDIS_URL`` (N > 1 requires it: the policy has limits).

The policy is the peer benchmark's (``gateway-peers.llmgw.policy.yaml``: three mock upstreams,
request log on with full bodies) plus a global budget and a route rpm/tpm, far above what the
run spends, so that every request is admitted and settled — in memory or in Redis — as a
gateway enforcing budgets does (with Redis, a 2 s command timeout: the default 250 ms is exceeded
on a loaded 2-core machine, and a hard budget then fails closed with 503s). It runs behind the
harness's nginx mock and wrk (the shared gateway-peers harness: its ``bench.py`` supplies
``start_nginx`` and ``run_wrk``, its wrk script the request), ``c16`` and ``c64`` against the
fast upstream, each after a 2 s warm-up.

CPU is counted here, not by the harness: workers run in process groups of their own, so the
harness's process-group sum would see only the supervisor. A configuration's CPU per request is
utime + stime of the supervisor and every descendant over the wrk run, divided by the requests
wrk completed; redis-server's CPU is read apart (it is not a gateway process). Peak RSS is the
sum of VmHWM over the gateway's processes.

Pinning as the harness: the gateway on ``--proxy-cpu`` (default 1), nginx, wrk and Redis on
``--load-cpu`` (0). Two workers pinned to one core measure what a second process costs per
request, not what it could serve with a core of its own; ``--proxy-cpu 0,1`` gives them both
cores (shared with the load generator and the mock).

    .venv/bin/python benchmarks/workers_peer.py --rounds 3 [--duration 10] [--configs w1,w2-redis]

The harness is looked for at ``../shared/bench/gateway-peers`` beside the repository
(``BENCH_HARNESS=DIR`` to point elsewhere, e.g. when running from a git worktree).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from procstat import cpu_seconds, loadavg, mem_mb  # noqa: E402
from proxy_overhead import free_port  # noqa: E402
from scaffold import ServeGroup, flush_redis, start_redis, stop  # noqa: E402

HARNESS = Path(os.environ.get("BENCH_HARNESS", HERE.parents[1] / "shared" / "bench" / "gateway-peers"))
CONFIGS = {"w1": (1, False), "w1-redis": (1, True), "w2-redis": (2, True)}
SCENARIOS = {"c16": 16, "c64": 64}
LIMITS = """
budgets:
  limits:
    - {scope: global, usd: 1000000, window: day}
rate_limits:
  - {scope: route, name: gpt-4o-mini, rpm: 100000000, tpm: 1000000000000}
"""
# the default 250 ms command timeout is an outage on this shared 2-core machine (503s, fail_closed)
STATE = "state: {redis: {url_env: LLMGW_REDIS_URL, command_timeout_ms: 2000}}\n"


def harness():  # the shared harness's bench.py (standard library only)
    sys.path.insert(0, str(HARNESS))
    import bench  # type: ignore[import-not-found]

    return bench


def gateway(
    workers: int, port: int, redis_url: str | None, template: Path, env: dict, cpu: str, work: Path
) -> ServeGroup:  # fmt: skip
    """One `llmgw serve --workers N` on ``port``, started through benchmarks/gateway_peers_llmgw.py."""
    env = {**env, "PYTHONPATH": str(HERE.parent)}
    env.pop("LLMGW_REDIS_URL", None)
    if redis_url:
        env["LLMGW_REDIS_URL"] = redis_url
    cmd = ["taskset", "-c", cpu, sys.executable, str(HERE / "gateway_peers_llmgw.py"), "--port", str(port),
           "--run-dir", str(work), "--template", str(template), "--workers", str(workers)]  # fmt: skip
    return ServeGroup(cmd, env, work / f"serve-{port}.log", workers)


def answers(port: int, body: bytes) -> bool:
    """Whether a chat request to ``port`` gets a 200."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        return conn.getresponse().status == 200
    except OSError:
        return False


def measure(bench, gw: ServeGroup, port: int, redis: subprocess.Popen | None, args, lua: str) -> list[dict]:
    """One wrk run per scenario against a ready gateway: CPU per request, requests/s, latency."""
    out = []
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    for name, conns in SCENARIOS.items():
        bench.run_wrk(url, conns, args.warmup, {}, "gpt-4o-mini", args.load_cpu, lua)
        pids = gw.pids()
        c0, r0 = gw.cpu(pids), cpu_seconds(redis.pid) if redis else 0.0
        w = bench.run_wrk(url, conns, args.duration, {}, "gpt-4o-mini", args.load_cpu, lua)
        c1, r1 = gw.cpu(pids), cpu_seconds(redis.pid) if redis else 0.0
        n = w["requests"] or 1
        out.append({
            "scenario": name, "requests": w["requests"], "errors": w["errors"], "req_per_s": round(w["rps"], 1),
            "cpu_us_per_req": round((c1 - c0) / n * 1e6, 1), "redis_cpu_us_per_req": round((r1 - r0) / n * 1e6, 1),
            "p50_ms": w["p50_us"] / 1e3, "p99_ms": w["p99_us"] / 1e3, "processes": len(pids),
            "loadavg": loadavg(),
        })  # fmt: skip
    return out


def summary(rows: list[dict]) -> str:
    """Median (min–max) per configuration and scenario; spread = (max − min) / median."""
    lines = ["| config | scenario | CPU µs/req | spread | req/s | Redis CPU µs/req | p99 ms | peak RSS MB | load |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for config in CONFIGS:
        for sc in SCENARIOS:
            rs = [r for r in rows if r["config"] == config and r["scenario"] == sc]
            if not rs:
                continue

            def fig(key: str, rs: list[dict] = rs) -> str:
                xs = [r[key] for r in rs]
                return f"{statistics.median(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})"

            cpu = [r["cpu_us_per_req"] for r in rs]
            spread = (max(cpu) - min(cpu)) / statistics.median(cpu)
            rss = statistics.median(r["peak_rss_mb"] for r in rs)
            load = f"{min(r['loadavg'].split()[0] for r in rs)}–{max(r['loadavg'].split()[0] for r in rs)}"
            lines.append(f"| {config} | {sc} | {fig('cpu_us_per_req')} | {spread:.0%} | {fig('req_per_s')} | "
                         f"{fig('redis_cpu_us_per_req')} | {fig('p99_ms')} | {rss:.0f} | {load} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--proxy-cpu", default="1")
    ap.add_argument("--load-cpu", default="0")
    ap.add_argument("--out", type=Path, help="raw rows as JSON lines (default: in the work directory)")
    args = ap.parse_args()
    bench = harness()
    work = Path(tempfile.mkdtemp(prefix="llmgw-workers-peer-"))
    ports = {"fast": free_port(), "stream": free_port(), "slow": free_port()}
    ups = {k: f"http://127.0.0.1:{v}/v1" for k, v in ports.items()}
    env = {**os.environ, **{f"MOCK_UPSTREAM_{k.upper()}": v for k, v in ups.items()}}
    policy = (HERE / "gateway-peers.llmgw.policy.yaml").read_text() + LIMITS
    templates = {False: work / "policy.yaml", True: work / "policy-redis.yaml"}
    templates[False].write_text(policy)
    templates[True].write_text(policy + STATE)
    lua = str(HARNESS / "wrk" / "chat.lua")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    configs = args.configs.split(",")
    nginx = bench.start_nginx(str(work), ports, args.load_cpu, "/usr/lib/nginx/modules/ngx_http_echo_module.so")
    redis, url = start_redis(work, args.load_cpu)
    raw = args.out or work / "raw.jsonl"
    rows: list[dict] = []
    try:
        for rnd in range(args.rounds):
            for config in configs[rnd % len(configs) :] + configs[: rnd % len(configs)]:
                workers, shared = CONFIGS[config]
                if shared:
                    flush_redis(url)
                port = free_port()
                gw = gateway(workers, port, url if shared else None, templates[shared], env, args.proxy_cpu, work)
                try:
                    gw.wait_ready(lambda port=port: answers(port, body))
                    runs = measure(bench, gw, port, redis if shared else None, args, lua)
                    rss = mem_mb(gw.proc.pid).get("VmHWM_tree", 0.0)
                finally:
                    gw.stop()
                for r in runs:
                    r.update(config=config, round=rnd + 1, peak_rss_mb=rss, proxy_cpu=args.proxy_cpu)
                    rows.append(r)
                    with open(raw, "a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(json.dumps(r), flush=True)
    finally:
        stop(redis, signal.SIGKILL)
        bench.stop_proc(nginx, sig=signal.SIGQUIT)
    print(summary(rows))
    print(f"raw rows: {raw}")


if __name__ == "__main__":
    main()
