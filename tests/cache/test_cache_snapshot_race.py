"""A cache snapshot runs on the cache worker while the event loop keeps storing, evicting and
purging exact entries (and a start-up restore fills the stores from the worker while the loop
serves). Neither side may see the other's dictionaries change under it."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import orjson

from llmgw_kernel import load_policy
from llmgw_kernel.cache.service import CacheService, LazyBody
from llmgw_kernel.log.record import RequestRecord

ROUTES = [f"r{i}" for i in range(6)]


def _policy(max_entries: int):
    target = {"provider": "d", "model": "echo"}
    return load_policy({
        "providers": {"d": {"kind": "demo"}},
        "cache": {"exact": {"ttl_s": 600, "max_entries": max_entries}},
        "routes": {r: {"targets": [target]} for r in ROUTES},
    })  # fmt: skip


def _store(svc: CacheService, policy, i: int, route: str, now: float) -> None:
    rec = RequestRecord(f"req_{i}", now, "/v1/chat/completions")
    rec.route = route
    body = {"messages": [{"role": "user", "content": f"question {i}"}]}
    q = svc.prepare(policy.cache_for(route), rec, body, None, None)
    assert q is not None
    chunk = b'{"choices":[{"index":0,"delta":{"content":"x"}}]}'
    _completes_at_once(svc.store(q, rec, LazyBody([chunk], None) if i % 3 == 0 else b'{"id":"x"}'))


def _completes_at_once(coro) -> None:
    """Run the local store, which never waits (no loop turn: it runs on any thread), to its end."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise AssertionError("the local exact store waited on something")


def _race(svc: CacheService, policy, seconds: float, saves: int, routes: list[str]) -> tuple[int, list[BaseException]]:
    """Store/evict/purge on one thread (the loop's part) while this one snapshots (the worker's
    part), with a tiny GIL switch interval so that the two interleave often."""
    stop, errors = threading.Event(), []

    def loop_side() -> None:
        i = 0
        try:
            while not stop.is_set():
                _store(svc, policy, i, routes[i % len(routes)], time.time())
                if i % 500 == 0:
                    svc.purge_exact(policy, time.time() + 10_000)  # everything older expired
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=loop_side, daemon=True)
    thread.start()
    done, deadline = 0, time.monotonic() + seconds
    try:
        while done < saves and time.monotonic() < deadline and not errors:
            try:
                svc.save()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            done += 1
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(old)
    return done, errors


def test_snapshots_while_the_loop_stores_evicts_and_purges(tmp_path: Path) -> None:
    policy = _policy(max_entries=300)  # every store past 300 evicts: the dicts change size
    svc = CacheService(tmp_path)
    now = time.time()
    for i in range(600):
        _store(svc, policy, i, ROUTES[i % 2], now)
    done, errors = _race(svc, policy, seconds=20, saves=150, routes=ROUTES)
    assert errors == [], f"after {done} snapshots: {errors[0]!r}"
    assert done >= 10
    for k, route in enumerate(ROUTES):  # the race may have ended with a purge of everything
        _store(svc, policy, 10**6 + k, route, time.time())
    svc.save()  # quiet now: the last snapshot has every live entry, and it loads
    rows = [orjson.loads(x) for x in (tmp_path / "cache" / "entries.jsonl").read_bytes().split(b"\n") if x]
    assert len(rows) == sum(len(s.items()) for s in svc.exact.values()) > 0
    fresh = CacheService(tmp_path)
    assert fresh.restore(policy)[0] == "snapshot"
    assert {r: len(s.items()) for r, s in fresh.exact.items()} == {r: len(s.items()) for r, s in svc.exact.items()}


def test_a_snapshot_taken_during_a_store_is_followed_by_another(tmp_path: Path) -> None:
    """``dirty`` is cleared when the snapshot copies the entries, not after it wrote them: an
    entry stored while a snapshot was being written is not forgotten until the next change."""
    policy = _policy(max_entries=100)
    svc = CacheService(tmp_path)
    _store(svc, policy, 1, "r0", time.time())
    original = svc._write_snapshot  # the slow part, after the entries were copied

    def write_while_a_request_stores(lines, vectors):
        _store(svc, policy, 2, "r0", time.time())
        return original(lines, vectors)

    svc._write_snapshot = write_while_a_request_stores  # type: ignore[method-assign]
    assert svc.save() == 1
    assert svc.dirty, "the entry stored during the snapshot is not in it: the next snapshot must run"
