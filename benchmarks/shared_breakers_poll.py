"""What does one poll of the shared breakers cost? (docs/deploy.md, "Shared breakers: poll cost")

A gateway with ``state: {breakers: shared}`` reads the shared circuits every 0.5 s
(``state/breakers.py``): one script returning Redis's clock and the hash of open circuits,
applied to every local breaker. This runs :meth:`SharedBreakers.poll` ``--n`` times back to back
against a real redis-server (``scaffold.start_redis``: a free port, stopped at the end) with ``--routes`` routes of two
targets each, ``--open`` of them open in Redis, and reports per poll: this process's CPU
(``process_time``: the gateway's side) and Redis's CPU (``/proc``), over ``--rounds`` runs.

    .venv/bin/python benchmarks/shared_breakers_poll.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds, loadavg  # noqa: E402
from scaffold import start_redis, stop  # noqa: E402


def _policy(routes: int) -> Any:  # a Policy
    from llmgw_kernel import load_policy

    doc = {
        "providers": {"d": {"kind": "demo"}},
        "routes": {
            f"r{i}": {
                "targets": [{"provider": "d", "model": "a"}, {"provider": "d", "model": "b"}],
                "breaker": {"failures": 1, "cooldown_s": 3600},
            }
            for i in range(routes)
        },
        "state": {"redis": {}, "breakers": "shared"},
    }
    return load_policy(doc)


async def _round(url: str, routes: int, opened: int, n: int, redis_pid: int) -> tuple[float, float]:
    from llmgw_kernel.proxy.breaker import Breakers
    from llmgw_kernel.state import breakers as shared
    from llmgw_kernel.state.client import StateClient
    from llmgw_kernel.state.config import RedisSettings

    shared.POLL_S = 3600.0  # the background poller stays asleep: only the polls below run
    breakers = Breakers()
    breakers.sync(_policy(routes))
    client = StateClient(url, RedisSettings(command_timeout_ms=5000))
    link = shared.SharedBreakers(client, breakers).start()
    await client.redis.delete(client.key("breakers"))
    for i in range(opened):
        b = breakers.get(f"r{i}", "d/a")
        assert b is not None
        b.failure()  # opens and publishes
    await asyncio.sleep(0.2)
    await link.poll()  # warm: scripts loaded, connection open
    cpu0, redis0 = time.process_time(), cpu_seconds(redis_pid)
    for _ in range(n):
        await link.poll()
    cpu, redis_cpu = time.process_time() - cpu0, cpu_seconds(redis_pid) - redis0
    await link.stop()
    await client.close()
    return cpu / n * 1e6, redis_cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--routes", type=int, default=50)
    ap.add_argument("--open", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(Path(tmp))  # answers PING before the first round
        try:
            print(f"load average before: {loadavg()}; {args.routes} routes x 2 targets, {args.open} open, n={args.n}")
            gw, rd = [], []
            for r in range(args.rounds):
                g, d = asyncio.run(_round(url, args.routes, args.open, args.n, proc.pid))
                gw.append(g)
                rd.append(d)
                print(f"round {r + 1}: gateway {g:.0f} µs CPU/poll, redis {d:.0f} µs CPU/poll")
            print(
                f"gateway CPU per poll: median {statistics.median(gw):.0f} µs (min {min(gw):.0f}, max {max(gw):.0f}); "
                f"redis: median {statistics.median(rd):.0f} µs; at 2 polls/s: "
                f"{2 * statistics.median(gw) / 1e4:.3f}% of a core; load average after: {loadavg()}"
            )
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
