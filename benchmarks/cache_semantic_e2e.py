"""End-to-end latency of cache hits through a real ``llmgw serve``, with the official openai SDK.

    .venv/bin/python benchmarks/cache_semantic_e2e.py [--seeds 100] [--port 18931] [--threshold T]

Starts ``llmgw serve`` on 127.0.0.1 (demo provider, offline; policy with the exact and the
semantic cache, default threshold unless ``--threshold``), waits until /health reports the
semantic model ready, seeds ``--seeds`` prompts (chat-style questions read from the shared
MeanCache dev set; not copied), waits for the cache to take them, then sends, in one
shuffled order and one at a time:

- semantic requests: 4 light paraphrases of each seed (lower-cased without "?", a "Hey, "
  prefix, a " Thanks!" suffix, "Quick question: " prefix); each is sent once, so an exact hit
  on an earlier paraphrase cannot happen;
- exact repeats of the seeds (2 per seed);
- misses: new prompts (QQP questions), each answered by the demo provider and then stored.

Latency is the SDK call (``with_raw_response``, so the ``x-llmgw-cache`` header is read)
timed on the client; server CPU per request is the serving process's utime + stime
(/proc/PID/stat) read before and after each request, summed per kind. Requests whose
outcome differs from the kind they were sent as are reported under their actual outcome.
The server is stopped at the end (SIGTERM, then SIGKILL after 10 s).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmgw_kernel.cache_traffic import wait_for_models  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def paraphrases(text: str) -> list[str]:
    t = text.strip()
    bare = t.rstrip("?").rstrip()
    return [bare.lower(), f"Hey, {t}", f"{t} Thanks!", f"Quick question: {t}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--misses", type=int, default=200)
    ap.add_argument("--port", type=int, default=18931)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--data-dir", default="/work/shared/data/semcache")
    args = ap.parse_args()

    from openai import OpenAI

    mc = read_csv(Path(args.data_dir) / "meancache_chat_smoke.csv")
    qqp = read_csv(Path(args.data_dir) / "qqp_dev_5k.csv")
    seeds = list(dict.fromkeys(r["text_a"] for r in mc))[: args.seeds]
    fresh = [t for t in dict.fromkeys(r["text_a"] for r in qqp) if t not in seeds][: args.misses]

    work = Path(tempfile.mkdtemp(prefix="llmgw-cache-e2e-"))
    semantic = {"ttl_s": 3600, "verify": True}
    if args.threshold is not None:
        semantic["threshold"] = args.threshold
    import yaml

    policy = {
        "description": "cache e2e benchmark",
        "providers": {"demo": {"kind": "demo"}},
        "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
        "cache": {"exact": {"ttl_s": 3600}, "semantic": semantic},
        "log": {"bodies": "full", "flush_ms": 500},
    }
    (work / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server_log = open(work / "server.log", "wb")  # noqa: SIM115 (closed in the finally below)
    t_start = time.perf_counter()
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/llmgw"), "serve", "--host", "127.0.0.1", "--port", str(args.port),
         "--policy", str(work / "policy.yaml"), "--data-dir", str(work / "data"), "--no-dashboards"],
        stdout=server_log, stderr=subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
    try:
        try:
            wait_for_models(url, proc, timeout=60)
        except RuntimeError as exc:
            sys.exit(f"{exc}: see {work / 'server.log'}")
        ready_s = time.perf_counter() - t_start
        print(f"# server pid {proc.pid}, semantic model ready {ready_s:.1f} s after start; loadavg "
              f"{loadavg()}")  # fmt: skip

        client = OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=30)

        def ask(text: str) -> tuple[str, float, float, str | None]:
            c0 = cpu_s(proc.pid)
            t0 = time.perf_counter()
            raw = client.chat.completions.with_raw_response.create(
                model="demo", messages=[{"role": "user", "content": text}], temperature=0
            )
            raw.parse()
            dt = time.perf_counter() - t0
            return (
                raw.headers.get("x-llmgw-cache", "?"),
                dt,
                cpu_s(proc.pid) - c0,
                raw.headers.get("x-llmgw-cache-similarity"),
            )

        for i in range(5):  # warm the client and the server path (not measured)
            ask(f"warm-up request number {i}, please ignore")
        for s in seeds:
            ask(s)
        time.sleep(1.5)  # the cache stores after answering, off the request path

        jobs = [("semantic", p) for s in seeds for p in paraphrases(s)]
        jobs += [("exact", s) for s in seeds for _ in range(2)]
        jobs += [("miss", t) for t in fresh]
        random.Random(5).shuffle(jobs)
        lat: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, float] = defaultdict(float)
        outcome: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        sims: list[float] = []
        c_all, t_all = cpu_s(proc.pid), time.perf_counter()
        for sent, text in jobs:
            got, dt, dc, sim = ask(text)
            outcome[sent][got] += 1
            lat[got].append(dt)
            cpu[got] += dc
            if got == "semantic-hit" and sim:
                sims.append(float(sim))
        c_all, t_all = cpu_s(proc.pid) - c_all, time.perf_counter() - t_all

        print(f"# {len(jobs)} requests in {t_all:.1f} s wall, server CPU {c_all:.2f} s "
              f"({1e3 * c_all / len(jobs):.2f} ms per request overall); loadavg "
              f"{loadavg()}")  # fmt: skip
        for sent, got in outcome.items():
            print(f"# sent as {sent}: " + ", ".join(f"{k} {v}" for k, v in sorted(got.items())))
        if sims:
            print(f"# semantic-hit similarity: min {min(sims):.3f}, median {np.median(sims):.3f}")
        print()
        print("| outcome | n | p50 ms | p95 ms | p99 ms | server CPU ms/request |")
        print("|---|---:|---:|---:|---:|---:|")
        for got in ("semantic-hit", "hit", "miss"):
            xs = lat.get(got)
            if not xs:
                continue
            a = 1e3 * np.asarray(xs)
            print(f"| {got} | {len(xs)} | {np.percentile(a, 50):.2f} | {np.percentile(a, 95):.2f} | "
                  f"{np.percentile(a, 99):.2f} | {1e3 * cpu[got] / len(xs):.2f} |")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server_log.close()
        print(f"\n(server stopped, rc {proc.returncode}; files in {work})")


if __name__ == "__main__":
    main()
