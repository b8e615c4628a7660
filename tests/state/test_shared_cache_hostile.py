"""The exact cache shared through Redis by `llmgw serve --workers 2`, met the way an operator's
bad day meets it: identical requests arriving at once on both workers, Redis restarted while
traffic flows, Redis full (``maxmemory`` + ``noeviction``), and the policy reloaded with another
``ttl_s`` over answers already cached. What docs/cache.md ("Sharing across replicas") promises:
the cache never fails a request (a miss flagged ``shared cache unavailable``, an answer served
but not stored), visibility is ``stored < arrival < stored + ttl_s`` with the ttl in force, and
the live policy replays to the logged cache decisions. A real redis-server on a free port, the
fake OpenAI upstream, one connection per request (so the kernel spreads them over the workers).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import policy_for
from redis_server import REDIS_SERVER, RedisServer

sys.path.insert(0, str(Path(__file__).parent.parent / "cli"))
from test_workers import Serve  # noqa: E402  (tests/cli: one `llmgw serve` process with its workers)

from llmgw_kernel import load_policy, open_log, replay  # noqa: E402


class BoundedRedis(RedisServer):
    """A redis-server started with extra arguments (``maxmemory`` ...)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        super().__init__(tmp)
        self.args = args

    def start(self) -> BoundedRedis:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.tmp),
             "--save", "", "--appendonly", "no", "--logfile", str(self.log), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.ping():
            assert time.monotonic() < deadline, self.log.read_text(errors="replace")
            time.sleep(0.02)
        return self


def _policy(upstream_url: str, ttl_s: float = 600) -> dict:
    policy = policy_for(upstream_url)
    policy["routes"] = {"cached": {"targets": [{"provider": "local", "model": "gpt-4o-mini"}]}}
    policy["cache"] = {"exact": {"ttl_s": ttl_s}}
    policy["state"] = {"redis": {"url_env": "TEST_REDIS_URL", "command_timeout_ms": 3000, "connect_timeout_ms": 1000}}
    return policy


def start(tmp: Path, upstream, redis: RedisServer, ttl_s: float = 600) -> Serve:
    serve = Serve(tmp, _policy(upstream.base_url, ttl_s), "--workers", "2", "--no-dashboards",
                  env={"TEST_REDIS_URL": redis.url}).wait_ready()  # fmt: skip
    wait_redis_up(serve)
    return serve


def wait_redis_up(serve: Serve, timeout: float = 20) -> None:
    """Until both workers use Redis: /health is ready before a worker's first connect (which may
    time out on this loaded machine, then retries every 0.25 s); 10 answers in a row, each on a
    connection of its own, say ``redis``."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 10:
        assert time.monotonic() < deadline, "a worker never reached Redis"
        with httpx.Client(timeout=5) as client:
            store = client.get(f"{serve.url}/health").json()["cache"]["exact_store"]
        streak = streak + 1 if store == "redis" else 0
        time.sleep(0.02)


@pytest.fixture
def redis_factory(tmp_path: Path):
    started: list[RedisServer] = []

    def make(*args: str) -> RedisServer:
        server = BoundedRedis(tmp_path / f"redis{len(started)}", *args)
        server.tmp.mkdir()
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def serves():
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()


def ask(serve: Serve, text: str) -> httpx.Response:
    """One chat completion on a connection of its own; the response (raises on a 5xx)."""
    body = {"model": "cached", "messages": [{"role": "user", "content": text}]}
    with httpx.Client(timeout=30) as client:
        r = client.post(f"{serve.url}/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-hx"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r


def rows(serve: Serve, ids: list[str], timeout: float = 10) -> list[dict]:
    where = f"request_id IN ({', '.join(repr(i) for i in ids)})"
    deadline = time.monotonic() + timeout
    while True:
        con = open_log(serve.data_dir)
        rel = con.sql(f"SELECT * FROM requests WHERE {where} ORDER BY ts")
        got = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
        con.close()
        if len(got) >= len(ids) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def replay_differs(serve: Serve, ids: list[str], since) -> set[str]:
    result = replay(serve.policy_path, serve.data_dir, since=since)
    mine = result.decisions.loc[ids]
    return set(mine.index[mine["replay_cache"] != mine["logged_cache"]])


def test_identical_requests_at_once_on_two_workers_are_answered_and_replay_exactly(
    upstream, redis_factory, serves, tmp_path
):
    redis = redis_factory()
    serve = start(tmp_path / "s", upstream, redis)
    serves.append(serve)
    text = f"same question {uuid.uuid4().hex}"
    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(lambda _: ask(serve, text), range(16)))
    answers = {r.json()["choices"][0]["message"]["content"] for r in burst}
    assert len(answers) == 1
    later = [ask(serve, text) for _ in range(4)]
    assert [r.headers["x-llmgw-cache"] for r in later] == ["hit"] * 4
    ids = [r.headers["x-request-id"] for r in [*burst, *later]]
    got = rows(serve, ids)
    assert len(got) == 20
    misses = [r for r in got if r["cache"] == "miss"]
    assert misses and all(r["cache_stored_ts"] is not None for r in misses), [
        (r["cache_reason"], r["cache_stored_ts"], r["request_id"]) for r in misses
    ]
    assert all(r["cache_source"] in {m["request_id"] for m in misses} for r in got if r["cache"] == "hit")
    assert redis.client().dbsize() > 0
    assert replay_differs(serve, ids, since=min(r["ts"] for r in got)) == set()


def test_redis_restarted_mid_traffic_fails_no_request(upstream, redis_factory, serves, tmp_path):
    redis = redis_factory()
    serve = start(tmp_path / "s", upstream, redis)
    serves.append(serve)
    stored = ask(serve, "asked before the restart")
    assert stored.headers["x-llmgw-cache"] == "miss"
    results: list[httpx.Response | BaseException] = []
    stop = threading.Event()

    def traffic(n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                results.append(ask(serve, f"traffic {n} {i % 5}"))
            except BaseException as exc:  # noqa: BLE001  (any failure is what this test looks for)
                results.append(exc)
            i += 1

    def answered(n: int, seconds: float, what: str) -> None:
        """At least ``seconds`` and ``n`` more answers (bounded 60 s): a fixed time may hold too
        few requests under CI's load for the phase to show."""
        start, t0 = len(results), time.monotonic()
        while time.monotonic() - t0 < seconds or len(results) - start < n:
            assert time.monotonic() - t0 < 60, f"{len(results) - start} answers in 60 s {what}"
            time.sleep(0.05)

    threads = [threading.Thread(target=traffic, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        answered(6, 1.0, "before the restart")
        redis.kill()
        answered(6, 1.5, "while Redis was down")
        redis.start()
        answered(10, 2.0, "after Redis came back")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert len(results) > 20
    unavailable = [r for r in results if isinstance(r, httpx.Response) and r.headers["x-llmgw-cache"] == "miss"]
    assert unavailable
    deadline = time.monotonic() + 60
    while not redis.client().smembers("{llmgw}:xc|seeded"):
        assert time.monotonic() < deadline, "Redis was never seeded from the log"
        time.sleep(0.1)
    again = [ask(serve, "asked before the restart") for _ in range(4)]
    assert [(r.headers["x-llmgw-cache"], r.headers["x-llmgw-cache-source"]) for r in again] == [
        ("hit", stored.headers["x-request-id"])
    ] * 4
    ids = [r.headers["x-request-id"] for r in results if isinstance(r, httpx.Response)]
    assert len(rows(serve, ids)) == len(ids)  # one row per request, through the outage
    assert serve.proc.poll() is None and len(serve.workers()) == 2


def fill(redis: RedisServer) -> tuple[int, int]:
    """Fill a ``maxmemory`` Redis to the brim with keys of the operator's (which llmgw must never
    evict); how many were written (at least one: the ``maxmemory`` is first set half a megabyte
    above what Redis uses now, which llmgw's own keys and connections may already put past 1 MB)
    and that limit (:func:`make_room` goes back to it)."""
    client, filler = redis.client(), 0
    limit = client.info("memory")["used_memory"] + 512 * 1024
    client.config_set("maxmemory", limit)
    try:
        while True:
            client.set(f"hx:filler:{filler}", b"x" * 16384)
            filler += 1
    except Exception as exc:  # noqa: BLE001  (redis-py's OutOfMemoryError: the loop's end)
        assert "maxmemory" in str(exc), exc
    assert filler > 0
    # then hold it full: the limit a quarter megabyte under what is used now. Right at the limit, a
    # freed client buffer (the refused 16 KB value's) left room for a small answer now and then
    # (the next ask a hit, 1 of 2 runs at load ~14), as redis_server.RedisServer.fill does
    client.config_set("maxmemory", client.info("memory")["used_memory"] - 256 * 1024)
    return filler, limit


def make_room(redis: RedisServer, full: tuple[int, int]) -> None:
    """Undo :func:`fill`: its keys deleted, the limit it started with."""
    filler, limit = full
    redis.client().delete(*[f"hx:filler:{i}" for i in range(filler)])
    redis.client().config_set("maxmemory", limit)


FULL_REDIS = (
    "with Redis full (maxmemory + noeviction) every chat request is a 500 internal_error: pipeline._finish -> "
    "shared.limits.commit -> admission._send_settle -> _settle_in_redis -> reseed() raises StateUnavailable "
    "(OOM on the seeding script), which nothing catches (no budgets or rate limits in the policy at all)"
)


def test_a_full_redis_serves_answers_unshared_and_says_so(upstream, redis_factory, serves, tmp_path):
    redis = redis_factory("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    serve = start(tmp_path / "s", upstream, redis)
    serves.append(serve)
    full = fill(redis)
    text = f"when full {uuid.uuid4().hex}"
    first = ask(serve, text)
    second = ask(serve, text)
    assert [first.headers["x-llmgw-cache"], second.headers["x-llmgw-cache"]] == ["miss", "miss"]
    got = rows(serve, [first.headers["x-request-id"], second.headers["x-request-id"]])
    assert all(r["cache_stored_ts"] is None and r["status"] == 200 for r in got), got
    assert any(r["cache_reason"] and "not stored" in r["cache_reason"] for r in got), [r["cache_reason"] for r in got]
    assert redis.client().get("hx:filler:0") is not None  # noeviction: nothing of the operator's dropped
    make_room(redis, full)  # room again: the next answer is shared
    ask(serve, f"{text} after")
    assert ask(serve, f"{text} after").headers["x-llmgw-cache"] == "hit"


def test_an_error_after_the_answer_was_ready_is_one_well_formed_http_response(
    upstream, redis_factory, serves, tmp_path
):
    redis = redis_factory("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    serve = start(tmp_path / "s", upstream, redis)
    serves.append(serve)
    fill(redis)
    body = b'{"model": "cached", "messages": [{"role": "user", "content": "raw bytes when full"}]}'
    with socket.create_connection(("127.0.0.1", serve.port), timeout=30) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-hx\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    assert len(lengths) == 1, head.decode()
    assert int(lengths[0].split(b":")[1]) == len(payload)


def reload(serve: Serve, ttl_s: float) -> str:
    """Write the live policy with another ttl and wait until both workers answer under it."""
    doc = yaml.safe_load(serve.policy_path.read_text())
    doc["cache"]["exact"]["ttl_s"] = ttl_s
    serve.policy_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    version = load_policy(serve.policy_path).version
    deadline = time.monotonic() + 20
    streak = 0
    while streak < 8:
        assert time.monotonic() < deadline, "the policy was not reloaded"
        r = ask(serve, f"probe {uuid.uuid4().hex}")
        streak = streak + 1 if r.headers.get("x-llmgw-policy-version") == version else 0
        time.sleep(0.05)
    return version


def test_a_policy_reload_with_another_ttl_applies_to_answers_already_cached(upstream, redis_factory, serves, tmp_path):
    serve = start(tmp_path / "s", upstream, redis_factory(), ttl_s=600)
    serves.append(serve)
    text = f"ttl question {uuid.uuid4().hex}"
    stored = ask(serve, text)
    assert ask(serve, text).headers["x-llmgw-cache"] == "hit"
    reload(serve, 1)  # takes well over 1 s: the entry is now older than the ttl in force
    time.sleep(1.2)
    shorter = ask(serve, text)
    assert shorter.headers["x-llmgw-cache"] == "miss"  # stored < arrival < stored + ttl_s, with ttl 1
    reload(serve, 600)
    longer = ask(serve, text)
    assert longer.headers["x-llmgw-cache"] == "hit"  # the latest store, well within 600 s
    ids = [r.headers["x-request-id"] for r in (stored, shorter, longer)]
    got = rows(serve, ids)
    # replay runs one policy (the live one, ttl 600) over the window: the miss under ttl 1 is its hit
    assert replay_differs(serve, ids, since=min(r["ts"] for r in got)) == {ids[1]}


def test_a_passed_through_answer_is_shared_across_workers_in_every_api(upstream, redis_factory, serves, tmp_path):
    """docs/providers.md "Cache": a passed-through answer is stored in its chat form; a hit is
    served to /v1/responses through the translation and to /v1/completions as a text_completion."""
    serve = start(tmp_path / "s", upstream, redis_factory())
    serves.append(serve)
    text = f"pass me through {uuid.uuid4().hex}"
    with httpx.Client(timeout=30) as client:
        first = client.post(f"{serve.url}/v1/responses", json={"model": "cached", "input": text},
                            headers={"authorization": "Bearer sk-hx"})  # fmt: skip
    assert first.status_code == 200 and first.headers["x-llmgw-cache"] == "miss", first.text[:300]
    expected = "Hello from the fake upstream: " + text
    for _ in range(6):  # a connection each: both workers answer
        with httpx.Client(timeout=30) as client:
            again = client.post(f"{serve.url}/v1/responses", json={"model": "cached", "input": text},
                                headers={"authorization": "Bearer sk-hx"})  # fmt: skip
        assert again.headers["x-llmgw-cache"] == "hit", again.headers
        out = again.json()
        assert out["object"] == "response" and out["output"][0]["content"][0]["text"] == expected, out
    chat = ask(serve, text)
    assert chat.headers["x-llmgw-cache"] == "hit" and chat.json()["choices"][0]["message"]["content"] == expected


def test_a_client_leaving_a_passed_through_stream_releases_its_shared_reservation(redis_factory, serves, tmp_path):
    """Budgets in Redis, two workers, a /v1/responses stream passed through to a slow upstream
    (tests/proxy/test_passthrough_hostile.py's fake): the client leaves after the first event; the
    row says abandoned and no reservation stays in flight on any worker."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "proxy"))
    from test_passthrough_hostile import HostileUpstream

    fake = HostileUpstream().start()
    try:
        redis = redis_factory()
        policy = _policy(fake.base_url + "/v1")
        policy["routes"]["slow"] = {"targets": [{"provider": "local", "model": "sse-slow"}]}
        policy["pricing"] = {"sse-slow": {"input_per_1m": 2.5, "output_per_1m": 10.0}}
        policy["budgets"] = {"timezone": "UTC", "limits": [{"scope": "global", "usd": 100.0, "window": "day"}]}
        serve = Serve(tmp_path / "s", policy, "--workers", "2", "--no-dashboards",
                      env={"TEST_REDIS_URL": redis.url}).wait_ready()  # fmt: skip
        serves.append(serve)
        wait_redis_up(serve)
        rid = f"hx-{uuid.uuid4().hex[:12]}"
        with httpx.stream(
            "POST", f"{serve.url}/v1/responses", json={"model": "slow", "input": "leave", "stream": True},
            headers={"x-request-id": rid, "authorization": "Bearer sk-hx"}, timeout=30,
        ) as r:  # fmt: skip
            assert next(r.iter_lines()).startswith("event: response.created")
        deadline = time.monotonic() + 60
        while fake.cancelled == 0:
            assert time.monotonic() < deadline, "the upstream call was never cancelled"
            time.sleep(0.05)
        con_rows: list[dict] = []
        while not con_rows:
            assert time.monotonic() < deadline + 5, "no row"
            con = open_log(serve.data_dir)
            rel = con.sql(f"SELECT outcome, status FROM requests WHERE client_request_id = '{rid}'")
            con_rows = [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
            con.close()
            time.sleep(0.1)
        assert con_rows == [{"outcome": "abandoned", "status": 499}]
        time.sleep(1.0)  # the gauges are refreshed from Redis
        metrics = httpx.get(f"{serve.url}/metrics", timeout=5).text
        in_flight = [ln for ln in metrics.splitlines() if ln.startswith("llmgw_budget_in_flight_usd{")]
        assert in_flight and all(float(ln.rsplit(" ", 1)[1]) == 0.0 for ln in in_flight), in_flight
    finally:
        fake.stop()


def test_a_full_redis_ends_a_stream_with_its_done(upstream, redis_factory, serves, tmp_path):
    redis = redis_factory("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    serve = start(tmp_path / "s", upstream, redis)
    serves.append(serve)
    fill(redis)
    body = {"model": "cached", "stream": True, "messages": [{"role": "user", "content": "stream when full"}]}
    with httpx.stream(
        "POST", f"{serve.url}/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-hx"}, timeout=30
    ) as r:
        text = r.read().decode()
    assert r.status_code == 200 and text.rstrip().endswith("data: [DONE]"), text[-300:]


def test_a_full_redis_admits_a_budgeted_request_as_on_unavailable_says(upstream, redis_factory, serves, tmp_path):
    """docs/deploy.md "When Redis does not answer": a Redis that refuses the admission (full: OOM
    on its script) is unavailable for it; under ``fail_open`` the request is admitted against the
    process's own counters and its row says ``shared_state_unavailable`` (it was a 500)."""
    redis = redis_factory("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    policy = _policy(upstream.base_url)
    policy["state"]["redis"]["on_unavailable"] = "fail_open"
    policy["budgets"] = {"timezone": "UTC", "limits": [{"scope": "global", "usd": 100.0, "window": "day"}]}
    serve = Serve(tmp_path / "s", policy, "--workers", "2", "--no-dashboards",
                  env={"TEST_REDIS_URL": redis.url}).wait_ready()  # fmt: skip
    serves.append(serve)
    wait_redis_up(serve)
    fill(redis)
    answers = [ask(serve, f"budgeted when full {i} {uuid.uuid4().hex}") for i in range(4)]
    got = rows(serve, [r.headers["x-request-id"] for r in answers])
    assert len(got) == 4 and all(r["status"] == 200 for r in got), got
    # "full" is approximate (freed client buffers may let one more write in): refused ones are flagged
    flagged = [r for r in got if "shared_state_unavailable" in (r["budget_flags"] or [])]
    assert len(flagged) >= 2, [r["budget_flags"] for r in got]
