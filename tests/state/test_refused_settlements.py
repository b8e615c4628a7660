"""Settlements Redis refused with an error reply — it answered, so it was never marked down —
are kept, and sent as soon as a later settlement goes through: no reconnection would ever send
them. A real redis-server made read-only the way a failover does it (``REPLICAOF``: writes get
``-READONLY``), then promoted back (``REPLICAOF NO ONE``). Before the fix they waited for a
down/up cycle that never came: the spend stayed short and the reservations stayed held.

A full Redis (``maxmemory`` + ``noeviction``) refuses admissions but not settlements: a script
that has run a write (SETTLE's first, giving the reservation back, frees memory) runs to its end
on Redis 7, so settlements never pile up there; the second test holds that."""

from __future__ import annotations

import asyncio
import time

from conftest import free_port  # tests/conftest.py
from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel.decisions.limits import Budget, Limits, Subject, nano
from llmgw_kernel.policy.model import BudgetLimit
from llmgw_kernel.state.admission import SharedLimits
from llmgw_kernel.state.client import StateClient
from llmgw_kernel.state.config import RedisSettings

SUBJECT = Subject("k1", "t1", None, "m")
BUDGETS = [
    Budget(BudgetLimit(scope="key", name="k1", usd=100.0, window="month"), "k1"),
    Budget(BudgetLimit(scope="global", usd=1000.0, window="day"), None),
]
BUCKETS = [("key", "k1", "month"), ("global", None, "day")]
COST = 0.0012


def _shared(url: str) -> SharedLimits:
    settings = RedisSettings(command_timeout_ms=2000, on_unavailable="fail_open")
    return SharedLimits(StateClient(url, settings), Limits(), "test-dir", Limits)


async def _admit(lim: SharedLimits, rid: str, at: float, shared: bool) -> None:
    verdict = await lim.admit(rid, at, SUBJECT, BUDGETS, [], 0.01, 10)
    assert verdict.allowed and (("shared_state_unavailable" in verdict.flags) is not shared), verdict


async def _until_sent(lim: SharedLimits, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while lim.pending:
        assert time.monotonic() < deadline, f"{lim.pending} settlements Redis refused were never sent"
        await asyncio.sleep(0.02)


def test_settlements_redis_refused_are_sent_after_the_next_one_it_takes(redis_server) -> None:
    async def run() -> None:
        lim = _shared(redis_server.url)
        at = time.time()
        for i in range(3):  # reserved in Redis
            await _admit(lim, f"r{i}", at, shared=True)
        redis_server.client().replicaof("127.0.0.1", free_port())  # demoted: its data stays, writes refused
        for i in range(3):
            await lim.settle(f"r{i}", at, COST, 5)  # -READONLY: each kept, to give its reservation back
        await _admit(lim, "r3", at, shared=False)  # refused too: admitted locally
        await lim.settle("r3", at, COST, 5)
        await lim.commit(SUBJECT, at, COST)  # spend no limit tracked
        assert lim.client.up, "an error reply is not an outage"
        assert len(lim._pending) == 3 and lim._pending_spend  # three reservations; the other costs per bucket
        assert await lim.spend("global", None, "day", at) == (0.0, 0.03)
        redis_server.client().replicaof("NO", "ONE")  # promoted
        await _admit(lim, "r4", at, shared=True)
        await lim.settle("r4", at, COST, 5)  # taken: the kept ones follow it
        await _until_sent(lim)
        for scope, who, window in BUCKETS:
            committed, held = await lim.spend(scope, who, window, at)
            assert (nano(committed), held) == (6 * nano(COST), 0.0), scope
        await lim.client.close()

    asyncio.run(run())


def test_a_full_redis_refuses_admissions_but_takes_settlements(redis_server) -> None:
    async def run() -> None:
        lim = _shared(redis_server.url)
        at = time.time()
        await _admit(lim, "r0", at, shared=True)
        redis_server.fill()
        await _admit(lim, "r1", at, shared=False)  # OOM: admitted locally
        for rid in ("r0", "r1"):
            await lim.settle(rid, at, COST, 5)
        await lim.commit(SUBJECT, at, COST)
        assert lim.pending == 0
        for scope, who, window in BUCKETS:
            committed, held = await lim.spend(scope, who, window, at)
            assert (nano(committed), held) == (3 * nano(COST), 0.0), scope
        await lim.stop()
        await lim.client.close()

    asyncio.run(run())
