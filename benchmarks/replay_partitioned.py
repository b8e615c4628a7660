"""Partitioned replay: what a distributed engine costs, and what partitions buy.

    .venv/bin/python benchmarks/replay_partitioned.py engines            # Dask vs Ray on this machine
    .venv/bin/python benchmarks/replay_partitioned.py replay --rows 100000 --runs 3

**engines** (the measurement behind the engine choice, docs/replay-distributed.md): for each
installed engine, in a fresh subprocess per run, with 2 worker processes on this machine:
start-up (from nothing to a cluster that has run one task), the per-task overhead (the mean
round trip of 200 empty tasks, 2 at a time), the peak RSS of the driver plus every process the
engine started (summed, sampled every 50 ms from /proc), and the CPU seconds of the whole
process tree.

**replay** times :func:`~llmgw_kernel.replay` against
:func:`~llmgw_kernel.replay.engines.replay_partitioned` with 1 and 2 local partitions and 2
Dask partitions, on a synthetic log written through the real
:class:`~llmgw_kernel.log.writer.LogWriter` (``journal=False``): ``--rows`` requests over 32
keys in 8 teams, 4 routes, an exact cache (namespaces by key and team; every prompt distinct, so
every request is a miss) and a daily budget per team (never reached); each row as the live
policy served it, which replays with 0 differences (the partitioned replay splits the live
policy's own replay, where no estimate is read). The coupling graph has 8 components (a team
budget couples a team's keys). Each
scenario runs in a fresh subprocess: CPU = user + sys of the child and every process it
started, wall, peak RSS summed over the tree (sampled every 50 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from procstat import _descendants, cpu_seconds, mem_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# -- process-tree sampling ------------------------------------------------------------------


class TreeSampler:
    """Peak summed RSS and total CPU of this process and its descendants."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        for p in [os.getpid(), *_descendants(os.getpid())]:
            try:
                self.cpu[p] = max(self.cpu.get(p, 0.0), cpu_seconds(p))
            except OSError:
                continue  # ended meanwhile: its last sample stands
        self.peak_kb = max(self.peak_kb, int(mem_mb(os.getpid()).get("VmRSS_tree", 0) * 1024))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())


# -- engines --------------------------------------------------------------------------------


def _noop(i: int) -> int:
    return i


def engine_child(engine: str) -> dict[str, Any]:
    """One engine's start-up, per-task overhead and footprint (run in a fresh process)."""
    with TreeSampler() as tree:
        t0 = time.perf_counter()
        if engine == "dask":
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            client.submit(_noop, -1, pure=False).result()
            startup = time.perf_counter() - t0
            t1 = time.perf_counter()
            for batch in range(100):
                client.gather(client.map(_noop, [2 * batch, 2 * batch + 1], pure=False))
            per_task = (time.perf_counter() - t1) / 200
            client.close()
            cluster.close()
        else:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            remote = ray.remote(num_cpus=1)(_noop)
            ray.get(remote.remote(-1))
            startup = time.perf_counter() - t0
            t1 = time.perf_counter()
            for batch in range(100):
                ray.get([remote.remote(2 * batch), remote.remote(2 * batch + 1)])
            per_task = (time.perf_counter() - t1) / 200
            ray.shutdown()
    return {"startup_s": startup, "per_task_ms": per_task * 1000, "peak_rss_mb": tree.peak_kb / 1024,
            "cpu_s": tree.cpu_s}  # fmt: skip


# -- the synthetic log ----------------------------------------------------------------------

TEAMS = ("search", "support", "analytics", "research", "sales", "legal", "ops", "growth")
ROUTES = ("chat", "assistant", "batch", "summarize")
PRICE = {"input_per_1m": 0.15, "output_per_1m": 0.6}


def policy_doc() -> dict[str, Any]:
    target = {"provider": "openai", "model": "gpt-4o-mini"}
    return {
        "providers": {
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY"}
        },
        "routes": {r: {"targets": [target]} for r in ROUTES},
        "pricing": {"gpt-4o-mini": PRICE},
        "cache": {"exact": {"ttl_s": 600}},
        "budgets": {"limits": [{"scope": "team", "usd": 1_000_000, "window": "day"}]},
        "log": {"bodies": "full"},
    }


def write_log(data_dir: Path, rows: int) -> Path:
    """``rows`` requests as the live policy served them, through the real log writer."""
    import hashlib

    import orjson

    from llmgw_kernel import load_policy
    from llmgw_kernel.decisions.cache import exact_key
    from llmgw_kernel.log.record import RequestRecord
    from llmgw_kernel.log.writer import LogWriter

    doc = policy_doc()
    policy_path = data_dir / "policy.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    policy_path.write_text(json.dumps(doc))
    version = load_policy(doc).version
    writer = LogWriter(data_dir, flush_ms=1000, journal=False)
    start = 1_793_606_400.0  # 2026-11-02 08:00 UTC
    for i in range(rows):
        h = int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "big")
        key, route, prompt = h % 32, ROUTES[(h >> 8) % 4], i  # every prompt once: each one a miss, as logged
        ts = start + i / 50.0
        body = {"model": route, "messages": [{"role": "user", "content": f"prompt {prompt} for key {key}"}]}
        rec = RequestRecord(f"req_{i:012d}", ts, "chat.completions")
        rec.route, rec.policy_version, rec.status, rec.outcome = route, version, 200, "ok"
        rec.plan, rec.target, rec.provider, rec.upstream_model = (
            ("openai/gpt-4o-mini",),
            "openai/gpt-4o-mini",
            "openai",
            "gpt-4o-mini",
        )
        rec.attempts = [{"target": "openai/gpt-4o-mini", "status": 200, "latency_ms": 300.0, "error": None}]
        rec.ts_end, rec.latency_ms = ts + 0.3, 300.0
        rec.usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
        rec.request_raw = orjson.dumps(body)
        rec.key_id, rec.team = f"k{key:02d}", TEAMS[key % 8]
        rec.cost_usd = (12 * PRICE["input_per_1m"] + 30 * PRICE["output_per_1m"]) / 1e6
        rec.cache, rec.cache_key = "miss", exact_key(route, body)
        rec.cache_namespace = None
        rec.admission, rec.admitted_ts, rec.settled_ts = "ok", ts, ts + 0.3
        rec.reserved_usd, rec.reserved_tokens = rec.cost_usd, 42
        writer.append(rec)
    writer.close()
    return policy_path


# -- scenarios ------------------------------------------------------------------------------


def replay_child(scenario: str, data_dir: str) -> dict[str, Any]:
    from llmgw_kernel import replay
    from llmgw_kernel.replay.engines import replay_partitioned

    policy = str(Path(data_dir) / "policy.json")
    with TreeSampler() as tree:
        t0 = time.perf_counter()
        if scenario == "single":
            result = replay(policy, data_dir)
            parts = 1
        else:
            engine, n = scenario.split("-")
            result = replay_partitioned(policy, data_dir, engine=engine, partitions=int(n))  # type: ignore[arg-type]
            parts = result.summary["partitioning"]["partitions"]
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "cpu_s": tree.cpu_s, "peak_rss_mb": tree.peak_kb / 1024, "partitions": parts,
            "requests": result.summary["requests"], "differs": result.compare_to_log()}  # fmt: skip


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "child", *args], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=3600)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _report(title: str, runs: dict[str, list[dict[str, Any]]], keys: list[str]) -> None:
    print(f"\n{title}")
    print("| scenario | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, rs in runs.items():
        cells = [_spread([r[k] for r in rs]) for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("engines")
    e.add_argument("--runs", type=int, default=3)
    r = sub.add_parser("replay")
    r.add_argument("--rows", type=int, default=100_000)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--dir", default=None, help="reuse (or create) the log here")
    r.add_argument("--scenarios", default="single,local-1,local-2,dask-2")
    c = sub.add_parser("child")
    c.add_argument("what")
    c.add_argument("arg", nargs="?")
    args = ap.parse_args()
    if args.cmd == "child":
        res = engine_child(args.arg) if args.what == "engine" else replay_child(args.what, args.arg)
        print(json.dumps(res))
        return
    if args.cmd == "engines":
        runs = {eng: [_run_child(["engine", eng]) for _ in range(args.runs)] for eng in ("dask", "ray")}
        _report("engines, 2 worker processes", runs, ["startup_s", "per_task_ms", "peak_rss_mb", "cpu_s"])
        return
    data = Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / f"llmgw-replay-partitioned-{args.rows}"
    if not (data / "policy.json").exists():
        t0 = time.perf_counter()
        write_log(data, args.rows)
        print(f"wrote {args.rows} rows to {data} in {time.perf_counter() - t0:.1f} s")
    scenarios = args.scenarios.split(",")
    runs = {s: [] for s in scenarios}
    for _ in range(args.runs):
        for s in scenarios:
            runs[s].append(_run_child([s, str(data)]))
    for s, rs in runs.items():
        assert all(r["differs"] == 0 and r["requests"] == args.rows for r in rs), (s, rs)
    _report(f"replay of {args.rows:,} rows (the live policy)", runs, ["wall_s", "cpu_s", "peak_rss_mb", "partitions"])


if __name__ == "__main__":
    main()
