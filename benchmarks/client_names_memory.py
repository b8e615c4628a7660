"""The proxy's memory kept per distinct team/user name a client gives (docs/server.md, "Input limits").

Starts `llmgw serve` (open mode, one priced demo route; no budget, or with `--budgets` a global
one and one naming the team `search`: no budget names the names sent), sends N requests each
with its own `metadata.team` and `user` of SIZE characters (8 threads), and prints the status
codes, the server's RSS before and after, and the spend buckets its admission holds
(`llmgw_admission_state_entries{kind="spend_buckets"}`; "n/a" on a tree without that gauge).

    .venv/bin/python benchmarks/client_names_memory.py -n 3000 --size 8000
    .venv/bin/python benchmarks/client_names_memory.py -n 3000 --size 240 [--budgets]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"chat": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
    "pricing": {"demo-echo": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
    "log": {"flush_ms": 200},
}


def rss_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def spend_buckets(metrics: str) -> str:
    for line in metrics.splitlines():
        if line.startswith('llmgw_admission_state_entries{kind="spend_buckets"}'):
            return str(int(float(line.rsplit(" ", 1)[1])))
    return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--size", type=int, default=8000, help="characters per name")
    ap.add_argument("--budgets", action="store_true", help="a global budget and one for the team 'search'")
    args = ap.parse_args()
    policy = dict(POLICY)
    if args.budgets:
        policy["budgets"] = {"limits": [
            {"scope": "global", "usd": 1e6, "window": "month"},
            {"scope": "team", "name": "search", "usd": 1e6, "window": "month"},
        ]}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        (Path(tmp) / "live.yaml").write_text(yaml.safe_dump(policy))
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", f"{tmp}/live.yaml",
             "--data-dir", f"{tmp}/data", "--no-dashboards"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
            body = {"model": "chat", "messages": [{"role": "user", "content": "m"}]}
            with httpx.Client(timeout=60) as c:
                c.post(f"{url}/v1/chat/completions", json=body)  # warm
                before = rss_mb(proc.pid)

                def one(i: int) -> int:
                    name = f"{i:08d}".ljust(args.size, "n")
                    extra = {"user": name, "metadata": {"team": name}}
                    return c.post(f"{url}/v1/chat/completions", json={**body, **extra}).status_code

                with cf.ThreadPoolExecutor(8) as ex:
                    codes = list(ex.map(one, range(args.n)))
                time.sleep(2)
                after = rss_mb(proc.pid)
                buckets = spend_buckets(c.get(f"{url}/metrics").text)
            counts = {k: codes.count(k) for k in sorted(set(codes))}
            print(f"n={args.n} size={args.size} status={counts} rss_mb before={before:.0f} after={after:.0f} "
                  f"(+{after - before:.0f} MB, {1024 * (after - before) / args.n:.1f} KB per request) "
                  f"spend_buckets={buckets}")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
