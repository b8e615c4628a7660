"""The key store under concurrent writers: every write is linearisable (a key created is
usable by the very next request, whatever else is being written) and costs the same at 100
keys as at thousands. Seeded through the library (`KeyStore.create_many`, one fsync)."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, cli, metered_policy

from llmgw_kernel.keys.secrets import Secrets
from llmgw_kernel.keys.store import KeyHistory, KeySettings, KeyStore, KeyStoreBusy

SEEDED = 3000


def seed(data_dir: Path, n: int) -> KeyStore:
    """A key store of ``n`` keys, as the server will find it (same pepper, same journal)."""
    store = KeyStore(data_dir, Secrets(data_dir).pepper)
    store.create_many(KeySettings(name=f"seed-{i}", team=f"t{i % 7}") for i in range(n))
    return store


def journal(data_dir: Path) -> list[dict]:
    lines = (data_dir / "keys" / "events.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line]


@pytest.fixture(scope="module")
def seeded_gw(upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeded")
    t0 = time.monotonic()
    seed(tmp / "data", SEEDED)
    assert time.monotonic() - t0 < 30  # not the 129 s of one rebuilt history per key
    g = KeyedGateway(tmp, metered_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
    yield g
    g.terminate()


def _create_and_use(gw: KeyedGateway, name: str) -> tuple[str, int, str]:
    with httpx.Client(timeout=30) as client:
        r = client.post(
            f"{gw.url}/admin/virtual-keys", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        used = client.get(f"{gw.base_url}/llmgw/key", headers={"Authorization": f"Bearer {key}"})
        return key, used.status_code, used.text


def test_concurrent_creates_are_usable_at_once(seeded_gw):
    """8 admin clients x 5 creates against 3,000 keys: every new key works on the next request."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _create_and_use(seeded_gw, f"new-{i}"), range(40)))
    refused = [(status, text) for _, status, text in results if status != 200]
    assert refused == [], f"{len(refused)} of 40 new keys refused: {refused[:3]}"
    creates = [ev for ev in journal(seeded_gw.data_dir) if ev["type"] == "create"]
    assert len(creates) == SEEDED + 40
    listed = seeded_gw.admin("GET", "/admin/virtual-keys").json()["data"]
    assert len(listed) == SEEDED + 40 and sum(k["name"].startswith("new-") for k in listed) == 40
    # and a key revoked under concurrent writes is refused at once
    key, _, _ = results[0]
    key_id = key.split("-")[2]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        more = [pool.submit(_create_and_use, seeded_gw, f"late-{i}") for i in range(8)]
        assert seeded_gw.admin("POST", f"/admin/virtual-keys/{key_id}/revoke").status_code == 200
        assert seeded_gw.key_info(key).json()["error"]["code"] == "key_revoked"
        assert all(f.result()[1] == 200 for f in more)


def test_cli_writes_while_serving_are_seen_at_once(seeded_gw):
    """`llmgw keys` talks to the running server (the one writer): its create and revoke take
    effect on the next request, without a restart."""
    env = {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    created = cli("keys", "create", "--name", "cli-live", "--url", seeded_gw.url, env=env)
    assert created.returncode == 0, created.stderr
    body = orjson.loads(created.stdout)
    assert seeded_gw.key_info(body["key"]).status_code == 200
    revoked = cli("keys", "revoke", body["id"], "--url", seeded_gw.url, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert seeded_gw.key_info(body["key"]).json()["error"]["code"] == "key_revoked"


def test_the_library_does_not_write_behind_a_running_server(seeded_gw, tmp_path):
    """The server would not see such a key until its own next write: refused, with the way."""
    before = len(journal(seeded_gw.data_dir))
    store = KeyStore(seeded_gw.data_dir, Secrets(seeded_gw.data_dir).pepper)
    with pytest.raises(KeyStoreBusy, match=r"pid \d+.*admin API"):
        store.create(KeySettings(name="behind-its-back"))
    assert len(journal(seeded_gw.data_dir)) == before
    # a lock file left by a killed server does not block the library
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "llmgw.lock").write_text(orjson.dumps({"pid": int(dead.stdout), "command": "llmgw serve"}).decode())
    assert seed(tmp_path, 2).create(KeySettings(name="after-a-crash"))[0].id
    # nor does one whose pid now belongs to a live process that holds no lock (pid reuse)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "llmgw.lock").write_text(orjson.dumps({"pid": alive.pid, "command": "llmgw serve"}).decode())
        assert KeyStore(tmp_path, Secrets(tmp_path).pepper).create(KeySettings(name="pid-reused"))[0].id
    finally:
        alive.kill()
        alive.wait()


def test_threads_writing_one_store_lose_nothing(tmp_path):
    store = seed(tmp_path, 500)
    ids = list(store.keys)
    plains: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        record, plain = store.create(KeySettings(name=f"w{i}"))
        assert store.authenticate(plain, time.time()).id == record.id  # usable as soon as create returns
        store.update(ids[i], KeySettings(name=f"renamed-{i}"))
        with lock:
            plains.append(plain)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(64)))
    assert len(store.keys) == 564 and len(plains) == 64
    reloaded = KeyStore(tmp_path, Secrets(tmp_path).pepper)
    assert {k: v.version for k, v in reloaded.keys.items()} == {k: v.version for k, v in store.keys.items()}
    assert all(reloaded.authenticate(p, time.time()) for p in plains)
    assert len(journal(tmp_path)) == len(store.history.events) == 500 + 128


def test_two_writers_on_one_journal_see_each_other(tmp_path):
    """A second writer (another process, or the library while no server runs): each write
    first folds in what the other appended, so neither overwrites nor misses the other."""
    a = seed(tmp_path, 10)
    b = KeyStore(tmp_path, Secrets(tmp_path).pepper)
    ka, pa = a.create(KeySettings(name="from-a"))
    kb, pb = b.create(KeySettings(name="from-b"))  # b catches up on a's key before writing
    assert b.authenticate(pa, time.time()).id == ka.id
    a.revoke(kb.id)  # a learns b's key when it writes, so it can revoke it
    assert a.keys[kb.id].state(time.time()) == "revoked"
    b.update(ka.id, KeySettings(name="renamed-by-b"))
    assert b.keys[kb.id].state(time.time()) == "revoked"
    assert [ev["type"] for ev in journal(tmp_path)][-4:] == ["create", "create", "revoke", "update"]
    assert len(KeyHistory.load(tmp_path).current) == 12


def test_a_torn_last_line_is_dropped_not_glued_to_the_next_event(tmp_path):
    """A crash mid-write leaves half a line; the next write must not append onto it (the old
    loader then stopped at that line and lost every later key)."""
    seed(tmp_path, 3)
    path = tmp_path / "keys" / "events.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"ts": 1.0, "type": "create", "id": "abc')
    store = KeyStore(tmp_path, Secrets(tmp_path).pepper)
    assert len(store.keys) == 3
    record, plain = store.create(KeySettings(name="after-crash"))
    assert path.read_bytes().endswith(b"\n") and len(journal(tmp_path)) == 4
    again = KeyStore(tmp_path, Secrets(tmp_path).pepper)
    assert again.authenticate(plain, time.time()).id == record.id and len(again.keys) == 4


def _write_cpu_us(store: KeyStore, n: int = 40) -> float:
    """Median CPU time of one admin write (create, update or revoke), in µs."""
    samples = []
    for i in range(n):
        t0 = time.process_time()
        record, _ = store.create(KeySettings(name=f"bench-{i}"))
        store.update(record.id, KeySettings(name=f"bench-{i}", rpm=5))
        samples.append((time.process_time() - t0) / 2)
    samples.sort()
    return samples[n // 2] * 1e6


def test_write_cost_does_not_grow_with_the_store(tmp_path):
    small = seed(tmp_path / "small", 100)
    large = seed(tmp_path / "large", 10_000)
    os.sched_yield()
    small_us, large_us = _write_cpu_us(small), _write_cpu_us(large)
    # a rebuild per write costs ~40 ms at 10k keys; an O(1) write stays within noise of 100 keys
    assert large_us < 3 * small_us + 2000, (small_us, large_us)
