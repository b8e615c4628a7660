"""Admission cost over a long run: does CPU per request or memory grow with traffic?

Simulated traffic (a simulated clock, so 10 minutes take well under 10 minutes) through the
real :class:`llmgw_kernel.decisions.limits.Limits`: every request is admitted (``admit``)
against its key's and team's rpm and tpm limits and hard budgets, and settled (``settle``)
0.2–3 s later, in time order, as the live proxy does. Per simulated minute it prints the
CPU µs per request (admission + settlement + this simulator's own bookkeeping), the process
RSS, the number of rate windows, the most buckets any window holds and the requests in
flight. Flat CPU and RSS after the first minute = pass (exit 0); else exit 1.

    .venv/bin/python benchmarks/admission_long.py                   # 10 min at 1,000 req/s
    .venv/bin/python benchmarks/admission_long.py --minutes 3 --rate 500 --json
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime

from llmgw_kernel.decisions.limits import Budget, Limits, Rate, Subject
from llmgw_kernel.policy.model import BudgetLimit, RateLimit

START = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _subjects(keys: int, teams: int) -> list[tuple[Subject, list[Budget], list[Rate]]]:
    """Each key: rpm + tpm + a hard monthly budget of its own; each team: rpm + tpm + a hard daily budget."""
    team_rate = {
        f"team-{t}": RateLimit(scope="team", name=f"team-{t}", rpm=60_000, tpm=6_000_000) for t in range(teams)
    }
    team_budget = {
        f"team-{t}": BudgetLimit(scope="team", name=f"team-{t}", usd=1e6, window="day") for t in range(teams)
    }
    out = []
    for k in range(keys):
        key, team = f"key-{k}", f"team-{k % teams}"
        rates = [Rate(RateLimit(scope="key", name=key, rpm=600, tpm=100_000), key), Rate(team_rate[team], team)]
        budgets = [Budget(BudgetLimit(scope="key", name=key, usd=1e5, window="month"), key),
                   Budget(team_budget[team], team)]  # fmt: skip
        out.append((Subject(key, team, None, "gpt-4o-mini"), budgets, rates))
    return out


def run(minutes: int, rate: int, keys: int, teams: int, seed: int) -> dict:
    rng = random.Random(seed)
    subjects = _subjects(keys, teams)
    limits = Limits(timezone="UTC")
    pending: list[tuple[float, str, int]] = []  # (settle at, request id, tokens)
    per_minute = []
    seq = 0
    for minute in range(minutes):
        admitted = refused = 0
        cpu0 = time.process_time()
        for i in range(rate * 60):
            at = START + minute * 60 + i / rate
            while pending and pending[0][0] <= at:
                settle_at, rid, tokens = heapq.heappop(pending)
                limits.settle(rid, settle_at, tokens * 1e-6, tokens)
            subject, budgets, rates = subjects[rng.randrange(keys)]
            seq += 1
            rid = f"r{seq}"
            if limits.admit(rid, at, subject, budgets, rates, 0.002, 600).allowed:
                admitted += 1
                heapq.heappush(pending, (at + rng.uniform(0.2, 3.0), rid, rng.randint(50, 400)))
            else:
                refused += 1
        cpu = time.process_time() - cpu0
        per_minute.append({
            "minute": minute + 1, "requests": rate * 60, "admitted": admitted, "refused": refused,
            "cpu_us_per_request": round(cpu / (rate * 60) * 1e6, 2), "rss_mb": round(_rss_mb(), 1),
            **_held(limits), "in_flight": len(limits.flights), "budget_buckets": len(limits.committed),
        })  # fmt: skip
    return {"minutes": per_minute, "verdict": _verdict(per_minute)}


def _held(limits: Limits) -> dict:
    """Rate windows and the most entries one holds (buckets; on d230206, per-request records)."""
    windows = getattr(limits, "windows", None)
    if windows is not None:
        return {"rate_windows": len(windows), "max_buckets": max((len(w.buckets) for w in windows.values()), default=0)}
    queues = [*getattr(limits, "requests", {}).values(), *getattr(limits, "tokens", {}).values()]  # d230206
    return {"rate_windows": len(queues), "max_buckets": max((len(q) for q in queues), default=0)}


def _verdict(rows: list[dict]) -> dict:
    """Flat: after the first minute, no minute costs > 1.5x the median CPU, and RSS grows < 8 MB."""
    steady = rows[1:] or rows
    median = statistics.median(r["cpu_us_per_request"] for r in steady)
    worst = max(r["cpu_us_per_request"] for r in steady)
    rss_growth = steady[-1]["rss_mb"] - steady[0]["rss_mb"]
    flat = worst <= 1.5 * median and rss_growth < 8 and max(r["max_buckets"] for r in rows) <= 60
    return {"flat": flat, "cpu_median_us": median, "cpu_worst_us": worst, "rss_growth_mb": round(rss_growth, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=int, default=10)
    p.add_argument("--rate", type=int, default=1000, help="requests per simulated second")
    p.add_argument("--keys", type=int, default=200)
    p.add_argument("--teams", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result = run(args.minutes, args.rate, args.keys, args.teams, args.seed)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["load_average"] = os.getloadavg()
    result["args"] = vars(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.rate} req/s for {args.minutes} simulated min, {args.keys} keys in {args.teams} teams "
              f"(rpm + tpm + hard budget on each key and team)")  # fmt: skip
        print("minute  admitted  refused  CPU us/req  RSS MB  windows  max buckets  in flight")
        for r in result["minutes"]:
            print(f"{r['minute']:>6}  {r['admitted']:>8}  {r['refused']:>7}  {r['cpu_us_per_request']:>10}  "
                  f"{r['rss_mb']:>6}  {r['rate_windows']:>7}  {r['max_buckets']:>11}  {r['in_flight']:>9}")  # fmt: skip
        v = result["verdict"]
        print(f"{'flat' if v['flat'] else 'NOT flat'}: CPU median {v['cpu_median_us']} us, "
              f"worst {v['cpu_worst_us']} us; RSS growth {v['rss_growth_mb']} MB; wall {result['wall_s']} s; "
              f"load {result['load_average']}")  # fmt: skip
    return 0 if result["verdict"]["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
