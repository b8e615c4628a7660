"""A Redis that is full (``maxmemory`` + ``noeviction``) refuses every write with an OOM error
reply: for the admission state that is "Redis unavailable for this step", never an error raised
into the request. A settlement that finds Redis unseeded asks for a seeding, which reads the log:
after a refused seeding the next is tried no sooner than ``SEED_RETRY_S``, so a full Redis does
not cost one log read per request. A real redis-server, filled by the test."""

from __future__ import annotations

import asyncio
import time

from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel.decisions.limits import Budget, Limits, Subject
from llmgw_kernel.policy.model import BudgetLimit
from llmgw_kernel.state.admission import SEED_RETRY_S, SharedLimits
from llmgw_kernel.state.client import StateClient
from llmgw_kernel.state.config import RedisSettings

SUBJECT = Subject("k1", "t1", None, "m")
BUDGETS = [Budget(BudgetLimit(scope="global", usd=100.0, window="day"), None)]


def test_a_full_redis_settles_without_raising_and_reads_the_log_once_per_retry_period(redis_server) -> None:
    log_reads: list[float] = []

    def log_state() -> Limits:
        log_reads.append(time.monotonic())
        return Limits()

    async def run() -> int:
        settings = RedisSettings(command_timeout_ms=2000, on_unavailable="fail_open")
        lim = SharedLimits(StateClient(redis_server.url, settings), Limits(), "test-dir", log_state)
        admitted_locally = 0
        t0 = time.monotonic()
        for i in range(20):  # well within SEED_RETRY_S on this machine
            now = time.time()
            verdict = await lim.admit(f"r{i}", now, SUBJECT, BUDGETS, [], 0.01, 10)
            assert verdict.allowed
            admitted_locally += "shared_state_unavailable" in verdict.flags
            await lim.settle(f"r{i}", now, 0.0, 5)  # no cost: SETTLE writes nothing, finds Redis unseeded
        assert time.monotonic() - t0 < SEED_RETRY_S, "too slow to show the retry period"
        await lim.client.close()
        return admitted_locally

    redis_server.fill()
    admitted_locally = asyncio.run(run())
    assert admitted_locally == 20
    assert len(log_reads) == 1, log_reads  # one refused seeding; the 39 asks after it wait for the retry period
