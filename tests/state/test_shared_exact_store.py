"""The shared exact cache (state/exact_cache.py) against a real redis-server: the same rules as one
process's ExactStore (visibility, FIFO eviction by insertion, a refreshed key moving to the
back), stamps that order stores and lookups, bounded values and lifetimes, and a Redis that does
not answer turning into a miss and a no-op store in the cache service."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from redis_server import redis_server_fixture  # noqa: F401  (the redis_server fixture)

from llmgw_kernel import load_policy
from llmgw_kernel.cache.exact import Entry, ExactStore
from llmgw_kernel.cache.service import PURGE_MARGIN_S, SHARED_UNAVAILABLE, CacheService
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.state.client import StateClient, StateUnavailable
from llmgw_kernel.state.config import RedisSettings
from llmgw_kernel.state.exact_cache import MAX_VALUE_BYTES, Logged, SharedExactCache


def _client(url: str, **settings) -> StateClient:
    return StateClient(url, RedisSettings(**{"command_timeout_ms": 2000, **settings}))


def _entry(rid: str, body: bytes = b'{"id": "x"}') -> Entry:
    return Entry(rid, 0.0, body, "local/gpt-4o-mini", {"prompt_tokens": 3, "completion_tokens": 4})


def _key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_eviction_and_refresh_follow_the_local_store(redis_server) -> None:
    """The same puts into Redis and into an ExactStore leave the same keys answering (FIFO by
    insertion, a refreshed key moved to the back, the oldest deleted past max_entries)."""
    puts = [0, 1, 2, 1, 3, 4, 0, 5, 2, 6, 6, 7, 1]

    async def run() -> tuple[dict[str, str | None], dict[str, str | None], list[float]]:
        client = _client(redis_server.url)
        shared, local = SharedExactCache(client, PURGE_MARGIN_S), ExactStore()
        stamps = []
        for n, i in enumerate(puts):
            stored = await shared.put("m", _key(i), _entry(f"req_{n}"), "route=m", None, 600, 4)
            assert stored.at is not None
            stamps.append(stored.at)
            local.put(_key(i), _entry(f"req_{n}")._replace(stored_at=stored.at), max_entries=4)
        ts = stamps[-1] + 1
        remote = {}
        for i in set(puts):
            found, _ = await shared.get("m", _key(i), ts, 600)
            remote[_key(i)] = found.request_id if found else None
        mine = {}
        for i in set(puts):
            e = local.get(_key(i), ts, 600)
            mine[_key(i)] = e.request_id if e else None
        await client.close()
        return remote, mine, stamps

    remote, mine, stamps = asyncio.run(run())
    assert remote == mine
    assert sum(v is not None for v in remote.values()) == 4  # the bound held
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # strictly increasing
    r = redis_server.client()
    assert r.zcard("{llmgw}:xc|order|m") == 4
    assert len(r.keys("{llmgw}:xc|e|m|*")) == 4  # evicted entries are deleted, not only unlisted


def test_a_lookup_sees_exactly_the_stores_stamped_before_it(redis_server) -> None:
    """Visibility is the local rule over the stamps: stored_at < arrival < stored_at + ttl; a
    lookup's stamp is above every earlier store's; the entry carries what a hit serves."""

    async def run() -> None:
        client = _client(redis_server.url)
        shared = SharedExactCache(client, PURGE_MARGIN_S)
        before, at = await shared.get("m", _key(1), time.time(), 600)
        assert before is None
        stored = await shared.put("m", _key(1), _entry("req_a", b'{"a": 1}'), "route=m", "sha256:abc", 600, 10)
        assert stored.at is not None and stored.at > at
        found, looked = await shared.get("m", _key(1), stored.at + 0.5, 600)
        assert looked > stored.at
        assert found == Entry("req_a", stored.at, b'{"a": 1}', "local/gpt-4o-mini", _entry("x").usage)
        arrived_before, _ = await shared.get("m", _key(1), stored.at - 0.001, 600)
        assert arrived_before is None  # a request that arrived before the answer was stored
        expired, _ = await shared.get("m", _key(1), stored.at + 601, 600)
        assert expired is None
        other_route, _ = await shared.get("n", _key(1), stored.at + 0.5, 600)
        assert other_route is None
        await client.close()

    asyncio.run(run())


def test_values_and_lifetimes_are_bounded(redis_server) -> None:
    async def run() -> None:
        client = _client(redis_server.url)
        shared = SharedExactCache(client, PURGE_MARGIN_S)
        big = await shared.put("m", _key(1), _entry("big", b"x" * MAX_VALUE_BYTES), "route=m", None, 600, 10)
        assert big.at is None and "not stored" in (big.reason or "")
        ok = await shared.put("m", _key(2), _entry("small"), "route=m", None, 30, 10)
        assert ok.at is not None
        await client.close()

    asyncio.run(run())
    r = redis_server.client()
    assert not r.exists(f"{{llmgw}}:xc|e|m|{_key(1)}")
    ttl_ms = r.pttl(f"{{llmgw}}:xc|e|m|{_key(2)}")
    assert (30 + PURGE_MARGIN_S) * 1000 - 2000 < ttl_ms <= (30 + PURGE_MARGIN_S) * 1000  # freed by Redis
    assert 0 < r.pttl("{llmgw}:xc|order|m") <= (30 + PURGE_MARGIN_S) * 1000
    assert r.hget(f"{{llmgw}}:xc|e|m|{_key(2)}", "v").split(b"\n", 1)[0].startswith(b'["small"')


def _service(tmp_path: Path, url: str) -> tuple[CacheService, object]:
    """A cache service sharing its exact entries (call on a running loop); no log to seed from."""
    policy = load_policy({
        "providers": {"d": {"kind": "demo"}},
        "cache": {"exact": {"ttl_s": 600}},
        "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
    })  # fmt: skip
    svc = CacheService(tmp_path)
    svc.share(_client(url, connect_timeout_ms=200, command_timeout_ms=300), tmp_path, lambda: None, lambda: policy)
    return svc, policy


def _prepared(svc: CacheService, policy, rid: str, ts: float):
    rec = RequestRecord(rid, ts, "/v1/chat/completions")
    rec.route = "m"
    q = svc.prepare(policy.cache_for("m"), rec, {"messages": [{"role": "user", "content": "hi"}]}, None, None)
    assert q is not None
    return q, rec


def test_the_service_logs_the_stamps_and_degrades_to_a_miss_without_redis(redis_server, tmp_path) -> None:
    async def run() -> CacheService:
        svc, policy = _service(tmp_path, redis_server.url)
        q, rec = _prepared(svc, policy, "req_1", time.time())
        assert await svc.lookup(q, rec) is None and rec.cache_reason is None
        rec.outcome, rec.target = "ok", "d/echo"
        await svc.store(q, rec, b'{"id": "one"}')
        assert rec.cache_stored_ts is not None and rec.cache_stored_ts > rec.cache_lookup_ts
        assert svc.exact == {}  # nothing kept in this process
        q2, rec2 = _prepared(svc, policy, "req_2", time.time())
        hit = await svc.lookup(q2, rec2)
        assert hit is not None and hit.entry.request_id == "req_1" and rec2.cache == "hit"
        assert rec2.cache_lookup_ts > rec.cache_stored_ts
        redis_server.kill()
        q3, rec3 = _prepared(svc, policy, "req_3", time.time())
        assert await svc.lookup(q3, rec3) is None
        assert (rec3.cache, rec3.cache_reason) == ("miss", SHARED_UNAVAILABLE)
        rec3.outcome = "ok"
        await svc.store(q3, rec3, b'{"id": "three"}')
        assert rec3.cache_stored_ts is None  # stored nowhere, and the row says so
        assert svc.report()["exact_store"] == "redis (down)"
        redis_server.start()
        deadline = time.monotonic() + 5
        while not svc.shared.client.up:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "never reconnected"
            await asyncio.sleep(0.05)
        q4, rec4 = _prepared(svc, policy, "req_4", time.time())
        assert await svc.lookup(q4, rec4) is None and rec4.cache_reason is None  # empty Redis, but answering
        await svc.shared.client.close()  # type: ignore[union-attr]
        return svc

    svc = asyncio.run(run())
    metric = svc.shared.client.metrics.unavailable  # type: ignore[union-attr]
    assert metric.labels("cache_miss")._value.get() == 1
    assert metric.labels("cache_not_stored")._value.get() == 1
    svc.close()


def test_a_shared_service_keeps_no_exact_entries_of_its_own(redis_server, tmp_path) -> None:
    """A snapshot or the log rebuild does not fill local exact stores that nothing consults."""

    async def shared() -> tuple[CacheService, object]:
        found = _service(tmp_path, redis_server.url)
        await found[0].shared.client.close()  # type: ignore[union-attr]
        return found

    svc, policy = asyncio.run(shared())
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "entries.jsonl").write_text(
        '{"kind": "exact", "route": "m", "key": "k", "request_id": "r", "stored_at": 1.0, "body": "{}",'
        ' "target": "d/echo", "usage": null}'
    )
    import numpy as np

    np.save(tmp_path / "cache" / "vectors.npy", np.zeros((0, 0), np.float32))
    assert svc.restore(policy) == ("snapshot", 0)
    assert svc.exact == {}
    svc.close()


def test_an_unreachable_redis_raises_state_unavailable_at_once(tmp_path) -> None:
    from conftest import free_port

    async def run() -> float:
        client = _client(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_ms=200)
        shared = SharedExactCache(client, PURGE_MARGIN_S)
        with pytest.raises(StateUnavailable):
            await shared.get("m", _key(1), time.time(), 600)
        t0 = time.monotonic()
        with pytest.raises(StateUnavailable):  # marked down: no connect timeout per request
            await shared.put("m", _key(1), _entry("r"), "route=m", None, 600, 10)
        took = time.monotonic() - t0
        await client.close()
        return took

    assert asyncio.run(run()) < 0.05


def test_seeding_files_logged_answers_under_their_stamps_once(redis_server) -> None:
    """A Redis without a directory's answers gets them under their logged stamps, in the same
    FIFO order (the bound applies), never over a later answer Redis holds, never an expired one."""
    now = time.time()

    def logged(i: int, at: float) -> Logged:
        return Logged("m", _key(i), _entry(f"old_{i}")._replace(stored_at=round(at, 6)), "route=m", None, 600, 2)

    async def run() -> None:
        client = _client(redis_server.url)
        shared = SharedExactCache(client, PURGE_MARGIN_S)
        live = await shared.put("m", _key(3), _entry("live_3"), "route=m", None, 600, 2)
        assert live.at is not None
        history = [logged(0, now - 5000), logged(1, now - 30), logged(2, now - 20), logged(3, now - 10)]
        assert not await shared.seeded("dir-a")
        assert await shared.seed("dir-a", history) == 2  # 0 expired; 3 older than the live answer
        assert await shared.seeded("dir-a") and not await shared.seeded("dir-b")
        found = {i: (await shared.get("m", _key(i), now + 1, 600))[0] for i in range(4)}
        assert found[0] is None and found[1] is None  # expired; evicted (FIFO, bound 2)
        assert found[2] is not None and found[2].stored_at == round(now - 20, 6)
        assert found[3] is not None and found[3].request_id == "live_3"
        await client.close()

    asyncio.run(run())


def test_a_full_redis_refuses_the_store_and_the_cache_still_answers(redis_server, tmp_path) -> None:
    """Under ``maxmemory-policy noeviction`` a full Redis refuses writes: the store is a no-op
    saying so, the answer is still served, and the entries Redis holds still hit."""

    async def run() -> None:
        svc, policy = _service(tmp_path, redis_server.url)
        q, rec = _prepared(svc, policy, "req_1", time.time())
        await svc.lookup(q, rec)
        rec.outcome = "ok"
        await svc.store(q, rec, b'{"id": "one"}')
        assert rec.cache_stored_ts is not None
        r = redis_server.client()
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", "1")
        q2, rec2 = _prepared(svc, policy, "req_2", time.time())
        hit = await svc.lookup(q2, rec2)
        assert hit is not None and hit.entry.request_id == "req_1"
        other = svc.prepare(policy.cache_for("m"), rec2, {"messages": [{"role": "user", "content": "new"}]}, None, None)
        assert other is not None
        await svc.store(other, rec2, b'{"id": "two"}')
        assert rec2.cache_stored_ts is None and rec2.cache_reason == f"not stored: {SHARED_UNAVAILABLE}"
        assert svc.shared.client.up  # type: ignore[union-attr]  # an error reply is not an outage
        await svc.shared.client.close()  # type: ignore[union-attr]

    asyncio.run(run())


def test_stores_after_a_seed_are_stamped_above_it_whatever_redis_clock_says(redis_server) -> None:
    """A log written while Redis's clock (or another Redis's) ran ahead: stores after the seed
    still come after the seeded answers in the one order (replay's), never before them."""
    ahead = round(time.time() + 100, 6)

    async def run() -> None:
        client = _client(redis_server.url)
        shared = SharedExactCache(client, PURGE_MARGIN_S)
        entry = _entry("from_the_log")._replace(stored_at=ahead)
        assert await shared.seed("dir-a", [Logged("m", _key(1), entry, "route=m", None, 600, 10)]) == 1
        after = await shared.put("m", _key(2), _entry("live"), "route=m", None, 600, 10)
        assert after.at is not None and after.at > ahead
        _, looked = await shared.get("m", _key(2), time.time(), 600)
        assert looked > after.at
        await client.close()

    asyncio.run(run())
