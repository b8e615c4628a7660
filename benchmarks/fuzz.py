"""Fuzz a real ``llmgw serve`` with the generator of ``tests/proxy/test_fuzz.py`` (tests/fuzzgen.py)
for longer than CI can: a fake upstream of each provider kind behind it, ``-n`` requests to
every client route (chat, embeddings, Anthropic messages, models) with mutated bodies and
headers. Prints the count by status, every 5xx the gateway made itself (with the request that
caused it), requests that were not logged, and whether ``/health`` is still 200.

    .venv/bin/python benchmarks/fuzz.py -n 20000            # docs/benchmarks.md, "Fuzzing"
    .venv/bin/python benchmarks/fuzz.py -n 500 --seed 7     # a short run while working
    .venv/bin/python benchmarks/fuzz.py --parse-cost        # CPU of the depth check (docs/server.md)

Exit status 1 if any gateway 5xx, unlogged request or failed health check was seen.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import fuzzgen  # noqa: E402
import httpx  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from procstat import cpu_seconds  # noqa: E402


def run(n: int, rng_seed: int, show: int) -> int:
    from conftest import Gateway

    from llmgw_kernel import open_log

    fakes = fuzzgen.start_fakes()
    tmp = Path(tempfile.mkdtemp(prefix="llmgw-fuzz-"))
    gw = Gateway(tmp, fuzzgen.policy({k: f.base_url for k, f in fakes.items()}),
                 env={"FUZZ_UPSTREAM_KEY": fuzzgen.UPSTREAM_KEY})  # fmt: skip
    statuses: collections.Counter[int] = collections.Counter()
    answered: list[tuple[str, int, bytes, fuzzgen.FuzzRequest]] = []  # (request id, status, body, request)
    cpu0, t0 = cpu_seconds(gw.proc.pid), time.monotonic()
    client = httpx.Client(base_url=gw.url, timeout=60)

    @seed(rng_seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(req=fuzzgen.requests())
    def one(req: fuzzgen.FuzzRequest) -> None:
        r = client.request(req.method, req.path, content=req.body, headers=req.headers)
        statuses[r.status_code] += 1
        rid = r.headers.get("x-llmgw-request-id")
        if rid is not None:
            answered.append((rid, r.status_code, r.content, req))
        elif req.method == "POST" and req.path in fuzzgen.PIPELINE_PATHS:
            answered.append(("", r.status_code, r.content, req))  # the pipeline always names its row

    try:
        one()
        wall, cpu = time.monotonic() - t0, cpu_seconds(gw.proc.pid) - cpu0
        health = client.get("/health").status_code
        rows = _rows(open_log, gw.data_dir, {rid for rid, *_ in answered if rid})
    finally:
        client.close()
        gw.terminate()
        for fake in fakes.values():
            fake.stop()
    faults = []
    unlogged = []
    for rid, status, body, req in answered:
        row = rows.get(rid)
        if row is None:
            unlogged.append((rid, status, req))
        if (why := fuzzgen.gateway_fault(status, body, row)) is not None:
            faults.append((why, req))
    upstream_5xx = sum(1 for rid, status, _, _ in answered if status >= 500 and rid in rows) - len(faults)
    total = sum(statuses.values())
    per = cpu / max(total, 1) * 1e6
    print(f"requests: {total} in {wall:.0f} s wall; server CPU {cpu:.1f} s ({per:.0f} µs/request)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("by status: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())))
    print(f"gateway 5xx: {len(faults)}; upstream 5xx passed through: {max(upstream_5xx, 0)}")
    print(f"pipeline requests: {len(answered)}, logged: {len(answered) - len(unlogged)}, not logged: {len(unlogged)}")
    print(f"/health at the end: {health}")
    for why, req in faults[:show]:
        print(f"\n5xx: {why}\n  {req.describe()}")
    for rid, status, req in unlogged[:show]:
        print(f"\nnot logged ({rid or 'no request id'}, {status}):\n  {req.describe()}")
    return 1 if faults or unlogged or health != 200 else 0


def _rows(open_log: Any, data_dir: Path, ids: set[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
    """Log rows by request id, once every id has one (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        con = open_log(data_dir)
        try:
            rel = con.sql("SELECT request_id, client_request_id, status, outcome FROM requests")
            found = {}
            for request_id, client_id, status, outcome in rel.fetchall():
                row = {"status": status, "outcome": outcome}
                found[request_id] = row
                if client_id:
                    found.setdefault(client_id, row)
        finally:
            con.close()
        if ids <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def parse_cost(rounds: int = 5, n: int = 20000) -> None:
    """CPU µs per parse: orjson.loads alone vs load_json (parse + depth check), for typical bodies."""
    import orjson

    from llmgw_kernel.proxy.validate import load_json, too_deep

    system = {"role": "system", "content": "You are a helpful assistant. " * 8}
    turns = [{"role": "user", "content": "Tell me about the weather in Paris. " * 6},
             {"role": "assistant", "content": "It is sunny and warm today. " * 8}]  # fmt: skip
    tool = {"type": "function", "function": {"name": "f", "description": "A tool", "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}}},
        "required": ["a"]}}}  # fmt: skip
    bodies = {
        "chat, 3 messages": {"model": "m", "messages": [system, *turns], "temperature": 0.2, "metadata": {"team": "a"}},
        "chat, 15 messages": {"model": "m", "messages": [system, *turns * 7], "metadata": {"team": "a"}},
        "chat, 3 messages + 8 tools": {"model": "m", "messages": [system, *turns], "tools": [tool] * 8},
    }
    print(f"load average: {os.getloadavg()[0]:.2f}; best of {rounds} rounds of {n}")
    print("| body | bytes | brackets | orjson.loads µs | load_json µs | Python walk alone µs |")
    print("|---|---|---|---|---|---|")
    for name, body in bodies.items():
        raw = orjson.dumps(body)
        value = orjson.loads(raw)
        cells = [_best(orjson.loads, raw, rounds, n), _best(load_json, raw, rounds, n),
                 _best(too_deep, value, rounds, n)]  # fmt: skip
        brackets = raw.count(b"{") + raw.count(b"[")
        print(f"| {name} | {len(raw)} | {brackets} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


def _best(fn: Any, arg: Any, rounds: int, n: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            fn(arg)
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="requests to send (default 2000)")
    ap.add_argument("--seed", type=int, default=10, help="hypothesis seed (default 10)")
    ap.add_argument("--show", type=int, default=20, help="how many failures to print in full")
    ap.add_argument("--parse-cost", action="store_true", help="measure the depth check's CPU instead")
    args = ap.parse_args()
    if args.parse_cost:
        parse_cost()
        return 0
    return run(args.n, args.seed, args.show)


if __name__ == "__main__":
    raise SystemExit(main())
