"""Settlements Redis missed while it was down are kept in bounded memory and all re-applied when it
returns: a real redis-server is snapshotted, killed (SIGKILL) and restarted from its snapshot (a Redis
that kept its data: one that comes back empty is re-seeded from the log instead, tested elsewhere)."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest
from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel.decisions.limits import Budget, Limits, Subject, nano
from llmgw_kernel.policy.model import BudgetLimit
from llmgw_kernel.state import admission
from llmgw_kernel.state.admission import SharedLimits
from llmgw_kernel.state.client import StateClient
from llmgw_kernel.state.config import RedisSettings

T0 = float(int(time.time()))  # Redis expires keys by its own clock: the simulated time starts now
SUBJECTS = [Subject(f"k{i}", f"t{i % 5}", None, "m") for i in range(50)]
OUTAGE_SETTLEMENTS = 100_000


def _shared(url: str, lease_s: float = 900) -> SharedLimits:
    settings = RedisSettings(command_timeout_ms=2000, on_unavailable="fail_open", reservation_lease_s=lease_s)
    return SharedLimits(StateClient(url, settings), Limits(), "test-dir", Limits)


def _budgets(subject: Subject) -> list[Budget]:
    return [
        Budget(BudgetLimit(scope="key", name=subject.key, usd=1000.0, window="month"), subject.key),
        Budget(BudgetLimit(scope="global", usd=100_000.0, window="day"), None),
    ]


def _cost(i: int) -> float:
    return (i % 7) * 0.0001 + 0.000_001_3


async def _admit_in_redis(lim: SharedLimits, n: int, worst: float) -> None:
    """Admit ``n`` requests while Redis answers (each holds a reservation in Redis)."""
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        verdict = await lim.admit(f"f{i}", T0, subject, _budgets(subject), [], worst, 10)
        assert verdict.allowed and not verdict.flags


async def _settle_in_flight(lim: SharedLimits, n: int, spent: dict[str, int]) -> None:
    """Settle the ``n`` requests :func:`_admit_in_redis` admitted ($0.001 each), adding to ``spent``."""
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        await lim.settle(f"f{i}", T0 + 1, 0.001, 5)
        spent[subject.key] = spent.get(subject.key, 0) + nano(0.001)  # type: ignore[index]


async def _outage_traffic(lim: SharedLimits, spent: dict[str, int]) -> int:
    """Admit (locally: Redis is down) and settle OUTAGE_SETTLEMENTS requests; the bytes they left
    allocated."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(OUTAGE_SETTLEMENTS):
        subject = SUBJECTS[i % len(SUBJECTS)]
        verdict = await lim.admit(f"o{i}", T0 + 2, subject, _budgets(subject), [], 0.001, 10)
        assert verdict.allowed and "shared_state_unavailable" in verdict.flags
        await lim.settle(f"o{i}", T0 + 2, _cost(i), 3)
        spent[subject.key] = spent.get(subject.key, 0) + nano(_cost(i))  # type: ignore[index]
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return retained


async def _until_drained(lim: SharedLimits, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (lim.client.up and lim.pending == 0):
        assert time.monotonic() < deadline, f"not re-applied: up={lim.client.up}, pending={lim.pending}"
        await asyncio.sleep(0.05)


def test_settlements_missed_while_redis_is_down_stay_bounded_and_are_all_reapplied(redis_server):
    async def run() -> None:
        lim = _shared(redis_server.url)
        spent: dict[str, int] = {}
        await _admit_in_redis(lim, 20, 0.01)
        redis_server.client().save()  # what Redis holds when it goes away: the 20 reservations
        redis_server.kill()
        await _settle_in_flight(lim, 20, spent)
        assert not lim.client.up
        retained = await _outage_traffic(lim, spent)
        # unbounded, the queue held one entry per settlement (~20 MB here); folded, one per bucket
        assert retained < 1_000_000, f"{retained} bytes kept for {OUTAGE_SETTLEMENTS} settlements"
        assert lim.pending <= 20 + 6 * len(SUBJECTS)
        redis_server.start()  # from its snapshot
        await _until_drained(lim)
        for key, nanos in spent.items():
            committed, held = await lim.spend("key", key, "month", T0 + 3)
            assert (nano(committed), held) == (nanos, 0.0), key  # every cost counted, every reservation back
        total, held = await lim.spend("global", None, "day", T0 + 3)
        assert (nano(total), held) == (sum(spent.values()), 0.0)
        await lim.client.close()

    asyncio.run(run())


def test_over_the_cap_a_reservation_waits_for_its_lease_and_its_cost_is_still_counted(redis_server, monkeypatch):
    monkeypatch.setattr(admission, "MAX_PENDING_FLIGHTS", 5)

    async def run() -> None:
        lim = _shared(redis_server.url, lease_s=30)
        spent: dict[str, int] = {}
        await _admit_in_redis(lim, 12, 0.01)
        redis_server.client().save()
        redis_server.kill()
        await _settle_in_flight(lim, 12, spent)
        assert len(lim._pending) == 5  # the other 7 only as sums per bucket
        redis_server.start()
        await _until_drained(lim)
        assert await lim.spend("global", None, "day", T0 + 3) == pytest.approx((0.012, 0.07))  # 7 still reserved
        subject = SUBJECTS[0]
        assert (await lim.admit("late", T0 + 31, subject, _budgets(subject), [], 0.0, 0)).allowed  # leases ended
        assert await lim.spend("global", None, "day", T0 + 31) == pytest.approx((0.012, 0.0))
        await lim.client.close()

    asyncio.run(run())


def test_redis_failing_again_as_it_returns_keeps_the_settlements_for_its_next_return(redis_server):
    """The first check after Redis answers fails (it went away again): the settlements it missed
    stay queued and are sent when it answers once more (they were dropped before: with the
    client fixed, this fails on the swap-before-check order, the 4 costs lost)."""

    async def run() -> None:
        import redis

        lim = _shared(redis_server.url)
        spent: dict[str, int] = {}
        await _admit_in_redis(lim, 4, 0.01)
        redis_server.client().save()
        redis_server.kill()
        await _settle_in_flight(lim, 4, spent)
        check, failed = lim.client.redis.sismember, []

        async def flaky_check(*args):  # fault injection at the Redis client: the link drops once
            if not failed:
                failed.append(True)
                raise redis.ConnectionError("connection lost again")
            return await check(*args)

        lim.client.redis.sismember = flaky_check  # type: ignore[method-assign]
        redis_server.start()
        await _until_drained(lim)
        assert failed
        total, held = await lim.spend("global", None, "day", T0 + 3)
        assert (nano(total), held) == (sum(spent.values()), 0.0)
        await lim.client.close()

    asyncio.run(run())
