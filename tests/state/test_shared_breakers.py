"""Circuit breakers shared through Redis (``state: {breakers: shared}``): the policy field keeps
existing versions, two processes' breakers on one real Redis in process, then two real
`llmgw serve` replicas in front of a fake upstream whose first target fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, policy_for, wait_for_rows
from redis_server import RedisServer, redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel import load_policy
from llmgw_kernel.policy.load import canonical_policy, policy_version
from llmgw_kernel.proxy.breaker import CLOSED, HALF_OPEN, OPEN, Breakers
from llmgw_kernel.state import breakers as shared_breakers
from llmgw_kernel.state.breakers import SharedBreakers
from llmgw_kernel.state.client import StateClient
from llmgw_kernel.state.config import RedisSettings


def _doc(**state) -> dict:
    route = {"targets": [{"provider": "d", "model": "a"}, {"provider": "d", "model": "b"}], "breaker": state.pop("br")}
    return {"providers": {"d": {"kind": "demo"}}, "routes": {"r": route}, "state": {"redis": {}, **state}}


def test_a_policy_without_the_field_keeps_its_version():
    doc = {
        "providers": {"d": {"kind": "demo"}},
        "routes": {"r": {"targets": [{"provider": "d", "model": "a"}], "breaker": {"failures": 2}}},
        "state": {"redis": {"url_env": "TEST_REDIS_URL"}},
    }
    assert policy_version(load_policy(doc)) == "p-1323f766d244"  # what the commit before this field computed
    assert "breakers" not in canonical_policy(load_policy(doc))["state"]
    assert policy_version(load_policy({**doc, "state": {**doc["state"], "breakers": "local"}})) == "p-1323f766d244"
    shared = load_policy({**doc, "state": {**doc["state"], "breakers": "shared"}})
    assert policy_version(shared) != "p-1323f766d244" and canonical_policy(shared)["state"]["breakers"] == "shared"


# -- two processes' breakers on one Redis, in process ----------------------------------------------
COOL = 1.0


async def _replicas(url: str, mode: str = "shared") -> list[tuple[Breakers, SharedBreakers]]:
    policy = load_policy(_doc(br={"failures": 2, "cooldown_s": COOL}, breakers=mode))
    out = []
    for _ in range(2):
        breakers = Breakers()
        breakers.sync(policy)
        client = StateClient(url, RedisSettings(command_timeout_ms=2000))
        out.append((breakers, SharedBreakers(client, breakers).start()))
    return out


async def _close(replicas: list[tuple[Breakers, SharedBreakers]]) -> None:
    for _, link in replicas:
        await link.stop()
        await link.client.close()


async def _until(check, timeout: float = 3.0) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, "not within the timeout"
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


def test_an_open_circuit_reaches_the_other_process_and_one_process_probes(redis_server: RedisServer):
    async def main() -> None:
        (ba, la), (bb, lb) = await _replicas(redis_server.url)
        try:
            a, b = ba.get("r", "d/a"), bb.get("r", "d/a")
            assert a is not None and b is not None
            a.failure()
            a.failure()
            assert a.state == OPEN
            seen_after = await _until(lambda: b.state == OPEN)
            assert seen_after <= 1.0
            assert b.acquire() is not None and bb.get("r", "d/b").state == CLOSED  # only that target
            await asyncio.sleep(COOL)
            await _until(lambda: a.state == HALF_OPEN and b.state == HALF_OPEN)
            assert a.acquire() is not None and b.acquire() is not None  # both want to probe: no lease yet
            await _until(lambda: la.holds_probe(a) or lb.holds_probe(b))  # a poll claimed the probe
            verdicts = [a.acquire(), b.acquire(), a.acquire(), b.acquire()]
            assert sum(v is None for v in verdicts) == 1, verdicts  # one probe across both processes
            prober, other = (a, b) if verdicts[0] is None or verdicts[2] is None else (b, a)
            assert "another replica" in str(other.acquire())
            prober.release()  # the probe was abandoned: the lease goes back, the other process may probe
            await _until(lambda: other.acquire() is None)
            assert prober.acquire() is not None
            prober, other = other, prober
            prober.success()  # the probe succeeded: closed here, then everywhere
            assert prober.state == CLOSED
            await _until(lambda: other.state == CLOSED)
            assert redis_server.client().hgetall("{llmgw}:breakers") == {}
        finally:
            await _close([(ba, la), (bb, lb)])

    asyncio.run(main())


def test_a_claimed_probe_not_started_goes_back_to_the_others(redis_server: RedisServer):
    async def main() -> None:
        replicas = await _replicas(redis_server.url)
        (ba, la), (bb, lb) = replicas
        try:
            a, b = ba.get("r", "d/a"), bb.get("r", "d/a")
            assert a is not None and b is not None
            a.failure()
            a.failure()
            await asyncio.sleep(COOL)
            await _until(lambda: a.state == HALF_OPEN and b.state == HALF_OPEN)
            assert a.acquire() is not None and b.acquire() is not None
            await _until(lambda: la.holds_probe(a) or lb.holds_probe(b))
            holder, holder_link, other = (a, la, b) if la.holds_probe(a) else (b, lb, a)
            assert other.acquire() is not None  # the holder sends nothing to that target...
            waited = await _until(lambda: other.acquire() is None, timeout=shared_breakers.CLAIM_S + 2)
            assert other.probing and waited <= shared_breakers.CLAIM_S + shared_breakers.POLL_S + 0.5
            assert not holder_link.holds_probe(holder) and holder.acquire() is not None  # ...and lost its claim
        finally:
            await _close(replicas)

    asyncio.run(main())


def test_a_failed_probe_reopens_the_circuit_everywhere(redis_server: RedisServer):
    async def main() -> None:
        replicas = await _replicas(redis_server.url)
        (ba, _), (bb, _) = replicas
        try:
            a, b = ba.get("r", "d/a"), bb.get("r", "d/a")
            assert a is not None and b is not None
            b.failure()
            b.failure()
            await _until(lambda: a.state == OPEN)
            await _until(lambda: a.acquire() is None or b.acquire() is None)  # requests on both: one probes
            probes = [x for x in (a, b) if x.probing]
            assert len(probes) == 1 and all(x.acquire() is not None for x in (a, b))
            opened = probes[0].opened_at
            probes[0].failure()
            other = b if probes[0] is a else a
            await _until(lambda: other.state == OPEN and other.opened_at > opened - COOL)
            assert other.acquire().startswith("circuit open")
        finally:
            await _close(replicas)

    asyncio.run(main())


def test_local_breakers_publish_nothing(redis_server: RedisServer):
    async def main() -> None:
        replicas = await _replicas(redis_server.url, mode="local")
        (ba, _), (bb, _) = replicas
        try:
            a = ba.get("r", "d/a")
            assert a is not None and a.shared is None
            a.failure()
            a.failure()
            await asyncio.sleep(3 * shared_breakers.POLL_S)
            assert a.state != CLOSED and bb.states()[("r", "d/a")] == CLOSED
            assert redis_server.client().exists("{llmgw}:breakers") == 0
        finally:
            await _close(replicas)

    asyncio.run(main())


def test_redis_down_each_process_keeps_its_own_breaker(redis_server: RedisServer):
    async def main() -> None:
        replicas = await _replicas(redis_server.url)
        (ba, la), (bb, lb) = replicas
        try:
            redis_server.kill()
            a, b = ba.get("r", "d/a"), bb.get("r", "d/a")
            assert a is not None and b is not None
            a.failure()
            a.failure()  # the publish fails: logged, counted, no exception
            assert a.state == OPEN
            await asyncio.sleep(3 * shared_breakers.POLL_S)
            assert b.state == CLOSED and not la.client.up
            await asyncio.sleep(COOL)
            assert a.acquire() is None  # half-open: probes for itself without the lease
            assert la.client.metrics.unavailable.labels("breaker_local")._value.get() >= 1
            redis_server.start()  # back (empty): the circuits are shared again
            await _until(lambda: la.client.up and lb.client.up, timeout=5)
            a.release()  # a's circuit opened while Redis was down: Redis does not hold it, a probes it alone
            await asyncio.sleep(2 * shared_breakers.POLL_S)
            assert a.acquire() is None and b.state == CLOSED
            b2 = bb.get("r", "d/b")
            assert b2 is not None
            b2.failure()
            b2.failure()
            await _until(lambda: ba.states()[("r", "d/b")] == OPEN)
        finally:
            await _close(replicas)

    asyncio.run(main())


# -- two real replicas ------------------------------------------------------------------------------
# long enough that the requests between opening (or a failed probe) and the checks finish inside
# it under CI's load: at 3 s, load 14-16 let a second probe through (5 == 4, 2 of 7 runs)
GW_COOL = 15


def _serve_policy(upstream_url: str, dead: str, **state) -> dict:
    policy = policy_for(upstream_url)
    ok = {"provider": "other", "model": "gpt-4o"}
    policy["routes"]["b-shared"] = {
        "targets": [{"provider": "local", "model": dead}, ok], "breaker": {"failures": 3, "cooldown_s": GW_COOL},
    }  # fmt: skip
    policy["state"] = {"redis": {"url_env": "TEST_REDIS_URL", "command_timeout_ms": 2000}, **state}
    return policy


def _chat(gw: Gateway, rid: str) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions", headers={"x-request-id": rid},
        json={"model": "b-shared", "messages": [{"role": "user", "content": "x"}]}, timeout=30,
    )  # fmt: skip


@pytest.fixture
def replicas(upstream, redis_server, tmp_path: Path):
    started: list[Gateway] = []

    def make(dead: str, **state) -> tuple[Gateway, Gateway]:
        env = {"TEST_REDIS_URL": redis_server.url}
        for name in ("a", "b"):
            started.append(Gateway(tmp_path / name, _serve_policy(upstream.base_url, dead, **state), env))
        return started[0], started[1]

    yield make
    for gw in started:
        gw.terminate()


def test_a_circuit_opened_on_one_replica_is_skipped_by_the_other(replicas, upstream, redis_server):
    dead = "status-500-shared-breaker"
    a, b = replicas(dead, breakers="shared")
    for i in range(3):
        assert _chat(a, f"sa-{i}").headers["x-llmgw-target"] == "other/gpt-4o"
    assert upstream.counts[dead] == 3
    t0 = time.monotonic()
    while httpx.get(f"{b.url}/health").json()["circuits"]["b-shared"][f"local/{dead}"] != "open":
        assert time.monotonic() - t0 < 1.0, "replica B did not see the open circuit within 1 s"
        time.sleep(0.05)
    r = _chat(b, "sb-0")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert upstream.counts[dead] == 3  # B never tried the failing target
    row = wait_for_rows(b, "client_request_id = 'sb-0'")[0]
    assert row["attempts"][0]["error"].startswith("skipped: circuit open")
    # after the cooldown: one probe across both replicas (it fails and reopens the circuit everywhere)
    t0 = time.monotonic()
    while httpx.get(f"{a.url}/health").json()["circuits"]["b-shared"][f"local/{dead}"] == "open":
        assert time.monotonic() - t0 < GW_COOL + 60, "the circuit never left open"
        time.sleep(0.1)
    t0 = time.monotonic()
    while upstream.counts[dead] == 3:
        assert time.monotonic() - t0 < 60, "no replica probed the half-open circuit"
        for gw, name in ((a, "a"), (b, "b")):
            assert _chat(gw, f"probe-{name}-{time.monotonic()}").status_code == 200
    for i in range(4):
        for gw, name in ((a, "a"), (b, "b")):
            assert _chat(gw, f"after-probe-{name}-{i}").status_code == 200
    assert upstream.counts[dead] == 4  # one probe across both replicas
    # Redis gone: both keep serving with their own breakers, never an error
    redis_server.kill()
    for i in range(3):
        for gw, name in ((a, "a"), (b, "b")):
            assert _chat(gw, f"down-{name}-{i}").status_code == 200
    time.sleep(2 * shared_breakers.POLL_S)
    for gw in (a, b):
        assert 'llmgw_state_unavailable_total{decision="breaker_local"}' in httpx.get(f"{gw.url}/metrics").text
        assert "each process decides with its own breakers" in gw.server_log()


def test_local_breakers_stay_per_replica(replicas, upstream):
    dead = "status-500-local-breaker"
    a, b = replicas(dead)
    for i in range(3):
        _chat(a, f"la-{i}")
    time.sleep(3 * shared_breakers.POLL_S)
    assert _chat(b, "lb-0").status_code == 200
    assert upstream.counts[dead] == 4  # B tried the failing target itself: its breaker is its own
