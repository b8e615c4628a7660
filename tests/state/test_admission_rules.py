"""The Redis scripts apply the rules of decisions/limits.py: a random sequence of admissions
and settlements gets the same verdicts from the shared state as from the in-memory Limits,
and a reservation whose process died is released when its lease ends."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel.decisions.limits import Budget, Limits, Rate, Subject
from llmgw_kernel.policy.model import BudgetLimit, RateLimit
from llmgw_kernel.state.admission import SharedLimits
from llmgw_kernel.state.client import StateClient
from llmgw_kernel.state.config import RedisSettings

T0 = float(int(time.time()))  # Redis expires keys by its own clock: the simulated time starts now


def _shared(url: str, lease_s: float = 900) -> SharedLimits:
    settings = RedisSettings(command_timeout_ms=5000, reservation_lease_s=lease_s)
    return SharedLimits(StateClient(url, settings), Limits(), "test-dir", Limits)


def _limits_for(subject: Subject) -> tuple[list[Budget], list[Rate]]:
    budgets = [
        Budget(BudgetLimit(scope="team", name=subject.team, usd=0.05, window="day"), subject.team),
        Budget(BudgetLimit(scope="global", usd=0.2, window="month", mode="soft"), None),
        Budget(BudgetLimit(scope="key", name=subject.key, usd=0.03, window="month"), subject.key),
    ]
    rates = [
        Rate(RateLimit(scope="key", name=subject.key, rpm=7, tpm=900), subject.key),
        Rate(RateLimit(scope="route", name=subject.route, rpm=15), subject.route),
    ]
    return budgets, rates


async def _compare(url: str, seed: int) -> int:
    rng = random.Random(seed)
    local, shared = Limits(), _shared(url)
    subjects = [Subject(f"k{i}", f"t{i % 2}", None, "m") for i in range(3)]
    open_ids: list[str] = []
    at, decided = T0, 0
    for i in range(400):
        at += rng.choice([0.05, 0.3, 1.1, 7.0])
        if open_ids and rng.random() < 0.45:
            rid = open_ids.pop(rng.randrange(len(open_ids)))
            cost, tokens = rng.choice([0.0, 0.004, 0.011]), rng.randrange(0, 300)
            local.settle(rid, at, cost, tokens)
            await shared.settle(rid, at, cost, tokens)
            continue
        subject = rng.choice(subjects)
        budgets, rates = _limits_for(subject)
        worst, tokens = rng.choice([0.002, 0.006, 0.015]), rng.randrange(20, 400)
        mine = local.admit(f"r{i}", at, subject, budgets, rates, worst, tokens)
        theirs = await shared.admit(f"r{i}", at, subject, budgets, rates, worst, tokens)
        assert (theirs.allowed, theirs.kind, theirs.reason, theirs.flags, theirs.limit) == (
            mine.allowed, mine.kind, mine.reason, mine.flags, mine.limit,
        ), (i, at)  # fmt: skip
        if mine.retry_after_s is not None:
            assert theirs.retry_after_s == pytest.approx(mine.retry_after_s, abs=0.002)
        if mine.allowed:
            open_ids.append(f"r{i}")
        decided += 1
    await shared.client.close()
    return decided


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_scripts_decide_as_limits_does(redis_server, seed):
    redis_server.client().flushall()
    assert asyncio.run(_compare(redis_server.url, seed)) > 150


def test_a_dead_process_reservation_is_released_when_its_lease_ends(redis_server):
    async def run() -> None:
        subject = Subject("k1", "t", None, "m")
        budgets = [Budget(BudgetLimit(scope="key", name="k1", usd=0.01, window="month"), "k1")]
        dead = _shared(redis_server.url, lease_s=30)
        assert (await dead.admit("r1", T0, subject, budgets, [], 0.01, 10)).allowed
        await dead.client.close()  # its process is gone: r1 is never settled
        alive = _shared(redis_server.url, lease_s=30)
        held = await alive.admit("r2", T0 + 10, subject, budgets, [], 0.001, 10)
        assert held.kind == "budget_exceeded" and "$0.01 in flight" in (held.reason or "")
        assert (await alive.admit("r3", T0 + 31, subject, budgets, [], 0.001, 10)).allowed  # lease ended
        await alive.client.close()

    asyncio.run(run())


def test_a_redis_that_lost_its_data_gets_back_the_reservations_in_flight(redis_server):
    async def run() -> None:
        subject = Subject("k1", "t", None, "m")
        budgets = [Budget(BudgetLimit(scope="key", name="k1", usd=1.0, window="month"), "k1")]
        rates = [Rate(RateLimit(scope="key", name="k1", tpm=1000), "k1")]
        lim = _shared(redis_server.url)
        assert (await lim.admit("r1", T0, subject, budgets, rates, 0.6, 1000)).allowed
        redis_server.client().flushall()  # Redis restarted empty while r1 is in flight
        assert (await lim.admit("r2", T0 + 1, subject, budgets, [], 0.4, 10)).allowed  # re-seeds, puts r1 back
        refused = await lim.admit("r3", T0 + 2, subject, budgets, [], 0.3, 10)
        assert refused.kind == "budget_exceeded" and "$1.00 in flight" in (refused.reason or "")
        assert (await lim.admit("r4", T0 + 3, subject, [], rates, 0.0, 5)).kind == "rate_limited"  # 1000 held
        await lim.settle("r1", T0 + 4, 0.1, 100)  # its reservation is given back once, not twice
        assert await lim.spend("key", "k1", "month", T0 + 4) == (0.1, 0.4)
        await lim.client.close()

    asyncio.run(run())


def test_an_unpriced_request_is_admitted_and_settled(redis_server):
    """A target without a price reserves $0 (and a request may reserve 0 tokens): giving that
    back must not send Redis a negative zero (Lua's ``-0`` is not an integer to HINCRBY; the
    settlement failed and the client got a 500 after the upstream had answered)."""

    async def run() -> None:
        subject = Subject("k1", "t", None, "m")
        budgets = [Budget(BudgetLimit(scope="team", name="t", usd=1.0, window="day"), "t")]
        rates = [Rate(RateLimit(scope="key", name="k1", tpm=1000), "k1")]
        lim = _shared(redis_server.url)
        assert (await lim.admit("r1", T0, subject, budgets, rates, 0.0, 0)).allowed
        await lim.settle("r1", T0 + 1, None, 0)
        assert (await lim.admit("r2", T0 + 2, subject, budgets, rates, 0.0, 0)).allowed
        await lim.settle("r2", T0 + 3, 0.0, None)
        assert await lim.spend("team", "t", "day", T0 + 3) == (0.0, 0.0)
        await lim.client.close()

    asyncio.run(run())


def test_a_dead_process_reservation_is_released_however_late_the_next_admission_comes(redis_server):
    """A reservation whose process died is given back by the first admission after its lease
    ends — even one that comes long after (a quiet gateway): the flight record must not expire
    from Redis before its budget buckets do, or the money it held stays reserved all window.
    (Simulated here by admitting 1,000 s in the past: Redis expires keys by its own clock.)"""

    async def run() -> None:
        t0 = time.time() - 1000
        subject = Subject("k1", "t", None, "m")
        budgets = [Budget(BudgetLimit(scope="key", name="k1", usd=0.01, window="month"), "k1")]
        dead = _shared(redis_server.url, lease_s=30)
        assert (await dead.admit("r1", t0, subject, budgets, [], 0.01, 10)).allowed
        await dead.client.close()
        alive = _shared(redis_server.url, lease_s=30)
        assert (await alive.admit("r2", t0 + 31, subject, budgets, [], 0.001, 10)).allowed  # r1 reaped
        assert await alive.spend("key", "k1", "month", t0 + 31) == (0.0, 0.001)
        await alive.client.close()

    asyncio.run(run())
