"""Budgets and rate limits through a real `llmgw serve`: 200 concurrent requests against a hard
key budget, team budgets (hard and soft), rpm/tpm with Retry-After, spend rebuilt from the log
after a restart, and replay of the same log (live policy: parity; a smaller budget: what it
would have refused)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import openai
import pytest
import yaml
from conftest import wait_for_rows
from keyed_gateway import ACTUAL_USD, ADMIN_TOKEN, PRICE, KeyedGateway, chat, metered_policy

from llmgw_kernel import replay

N_CONCURRENT = 200
MAX_TOKENS = 20
BUDGET = 0.36  # ~20 requests at the actual $0.018 each


def budget_policy(upstream_url: str) -> dict:
    policy = metered_policy(upstream_url)
    policy["routes"]["limited-route"] = {"targets": [{"provider": "local", "model": "gpt-4o-mini"}]}
    policy["budgets"] = {
        "timezone": "UTC",
        "default_max_tokens": 50,
        "limits": [
            {"scope": "team", "name": "capped", "usd": 0.05, "window": "day", "mode": "hard"},
            {"scope": "team", "name": "soft-team", "usd": 0.01, "window": "week", "mode": "soft"},
        ],
    }
    policy["rate_limits"] = [{"scope": "route", "name": "limited-route", "rpm": 2}]
    return policy


class Box:
    """The module's server; the restart test replaces it with one on the same data dir."""

    gw: KeyedGateway


@pytest.fixture(scope="module")
def box(upstream, tmp_path_factory):
    b = Box()
    b.gw = KeyedGateway(
        tmp_path_factory.mktemp("budgets"), budget_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    yield b
    b.gw.terminate()


def spend_of(gw: KeyedGateway, key: str, scope: str) -> dict:
    r = gw.key_info(key)
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["spend"] if s["scope"] == scope)


def log_settled(gw: KeyedGateway, timeout: float = 10) -> None:
    """Wait until every request the server finished is in the log files."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        n = len(wait_for_rows(gw, "true", 0))
        if httpx.get(f"{gw.url}/health").json()["log"]["buffered"] == 0 and n == seen:
            return
        seen = n
        time.sleep(0.3)
    raise AssertionError("the log did not catch up")


async def _fire(gw: KeyedGateway, key: str, marker: str, n: int) -> list[tuple[int, str | None, str]]:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)

    async def one(i: int) -> tuple[int, str | None, str]:
        try:
            await client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": f"{marker} {i}"}]
            )
            return 200, None, ""
        except openai.APIStatusError as exc:
            return exc.status_code, exc.code, exc.message

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await client.close()


def test_a_hard_key_budget_holds_under_200_concurrent_requests(box, upstream):
    gw = box.gw
    key, record = gw.create_key(name="concurrent", team="load", budget_usd=BUDGET)
    marker = f"load-{uuid.uuid4().hex[:8]}"
    results = asyncio.run(_fire(gw, key, marker, N_CONCURRENT))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert ok and refused, results[:3]
    assert {(s, c) for s, c, _ in refused} == {(429, "budget_exceeded")}, set(refused)
    assert all(f"key '{record['id']}' monthly budget of $0.36 is exhausted" in m for _, _, m in refused), refused[0]

    rows = wait_for_rows(gw, f"key_id = '{record['id']}'", N_CONCURRENT)
    assert len(rows) == N_CONCURRENT
    spent = sum(r["cost_usd"] or 0 for r in rows)
    worst = max(r["reserved_usd"] for r in rows)
    assert ACTUAL_USD < worst < 0.1  # the reservation is the worst case of max_tokens=20
    assert spent == pytest.approx(len(ok) * ACTUAL_USD)
    assert spent <= BUDGET + worst, (spent, worst, len(ok))
    assert sum(1 for r in rows if r["admission"] == "budget_exceeded") == len(refused)
    assert {r["outcome"] for r in rows if r["admission"] == "budget_exceeded"} == {"limited"}
    reached = sum(  # the session's fake also holds other tests' requests (embeddings have no messages)
        1 for r in upstream.requests if str((r["body"].get("messages") or [{}])[-1].get("content")).startswith(marker)
    )
    assert reached == len(ok)  # a refused request never reaches the upstream

    own = spend_of(gw, key, "key")
    assert own["spent_usd"] == pytest.approx(spent) and own["in_flight_usd"] == 0  # nothing stuck in flight
    # reservations were worst cases: what they held back can still be spent, one at a time, until the
    # committed spend reaches the budget; then the key is refused
    for _ in range(30):
        try:
            chat(gw.client(key), max_tokens=MAX_TOKENS)
        except openai.RateLimitError as still:
            assert still.code == "budget_exceeded"
            assert still.response.headers["x-should-retry"] == "false"
            assert int(still.response.headers["retry-after"]) >= 1
            break
    else:
        raise AssertionError("the budget never refused")
    final = spend_of(gw, key, "key")
    assert BUDGET <= final["spent_usd"] <= BUDGET + worst and final["in_flight_usd"] == 0
    r = gw.admin("PATCH", f"/admin/virtual-keys/{record['id']}", {"budget_usd": BUDGET + 1})
    assert r.status_code == 200
    assert chat(gw.client(key), max_tokens=MAX_TOKENS)[1].usage.completion_tokens == 7  # admitted again


def test_a_hard_team_budget_is_shared_by_the_team(box):
    gw = box.gw
    a, _ = gw.create_key(name="capped-a", team="capped")
    b, _ = gw.create_key(name="capped-b", team="capped")
    outsider, _ = gw.create_key(name="free", team="other")
    for key in (a, b, a):  # 3 x $0.018 = $0.054: the third one starts below $0.05
        chat(gw.client(key), max_tokens=5)
    for key in (a, b):
        with pytest.raises(openai.RateLimitError) as err:
            chat(gw.client(key), max_tokens=5)
        assert err.value.code == "budget_exceeded"
        assert "team 'capped' daily budget of $0.05 is exhausted" in err.value.message
        assert err.value.body["type"] == "insufficient_quota"
    assert chat(gw.client(outsider), max_tokens=5)[1].usage.prompt_tokens == 11
    team = spend_of(gw, a, "team")
    assert team["name"] == "capped" and team["spent_usd"] == pytest.approx(3 * ACTUAL_USD) and team["mode"] == "hard"


def test_a_soft_budget_allows_and_flags(box):
    gw = box.gw
    key, record = gw.create_key(name="soft", team="soft-team")
    first, _ = chat(gw.client(key))
    second, _ = chat(gw.client(key))
    third, _ = chat(gw.client(key))
    rows = {r["request_id"]: r for r in wait_for_rows(gw, f"key_id = '{record['id']}'", 3)}
    assert rows[first["x-llmgw-request-id"]]["budget_flags"] is None  # $0 spent of $0.01
    for h in (second, third):
        row = rows[h["x-llmgw-request-id"]]
        assert row["admission"] == "ok" and row["status"] == 200
        assert row["budget_flags"] == ["team 'soft-team' weekly budget of $0.01"]
    soft = spend_of(gw, key, "team")
    assert soft["mode"] == "soft" and soft["spent_usd"] == pytest.approx(3 * ACTUAL_USD)


def test_rpm_and_tpm_refuse_with_retry_after(box):
    gw = box.gw
    key, _ = gw.create_key(name="rpm", rpm=3)
    client = gw.client(key)
    for _ in range(3):
        chat(client)
    with pytest.raises(openai.RateLimitError) as err:
        chat(client)
    assert err.value.code == "rate_limit_exceeded" and "limit of 3 requests per minute" in err.value.message
    retry = int(err.value.response.headers["retry-after"])
    assert 1 <= retry <= 60 and 0 < int(err.value.response.headers["retry-after-ms"]) <= 60_000

    tkey, trec = gw.create_key(name="tpm", tpm=40)
    tclient = gw.client(tkey)
    for _ in range(3):  # 18 tokens each once settled: 0, 18, 36 < 40
        chat(tclient, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as terr:
        chat(tclient, max_tokens=2)
    assert "limit of 40 tokens per minute" in terr.value.message and "retry-after" in terr.value.response.headers

    route_key, _ = gw.create_key(name="route-limited")
    for _ in range(2):
        chat(gw.client(route_key), model="limited-route")
    with pytest.raises(openai.RateLimitError) as rerr:
        chat(gw.client(route_key), model="limited-route")
    assert "route 'limited-route' limit of 2 requests per minute" in rerr.value.message
    assert chat(gw.client(route_key))[1].usage.prompt_tokens == 11  # other routes unaffected


def test_lowering_a_keys_rpm_applies_to_the_requests_already_made(box):
    gw = box.gw
    key, record = gw.create_key(name="throttled", rpm=10)
    for _ in range(6):
        chat(gw.client(key))
    assert gw.admin("PATCH", f"/admin/virtual-keys/{record['id']}", {"rpm": 5}).status_code == 200
    with pytest.raises(openai.RateLimitError):  # 6 requests in the last minute >= 5
        chat(gw.client(key))


def test_a_small_max_tokens_does_not_let_concurrent_requests_overspend(box):
    gw = box.gw
    budget = 0.05
    key, record = gw.create_key(name="tiny-max-tokens", budget_usd=budget)
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)

    async def one() -> int:
        try:
            await client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
            )
            return 200
        except openai.RateLimitError:
            return 429

    async def fire() -> list[int]:
        try:
            return await asyncio.gather(*(one() for _ in range(50)))
        finally:
            await client.close()

    statuses = asyncio.run(fire())
    assert 429 in statuses
    rows = wait_for_rows(gw, f"key_id = '{record['id']}'", 50)
    spent = sum(r["cost_usd"] or 0 for r in rows)
    worst = max(r["reserved_usd"] for r in rows)
    assert spent <= budget + worst, f"spent ${spent:.3f} of ${budget} (reserved ${worst:.3f} per request)"


def test_the_reservation_covers_every_choice(box):
    gw = box.gw
    key, record = gw.create_key(name="n-choices", budget_usd=5)
    h, completion = chat(gw.client(key), n=4, max_tokens=10)
    assert len(completion.choices) == 4
    row = wait_for_rows(gw, f"request_id = '{h['x-llmgw-request-id']}'")[0]
    assert row["reserved_usd"] >= 4 * 10 * PRICE["output_per_1m"] / 1e6, row["reserved_usd"]


def _counts(gw: KeyedGateway) -> dict[str, int]:
    rows = wait_for_rows(gw, "admission IS NOT NULL AND admission <> 'ok'", 0)
    return {k: sum(1 for r in rows if r["admission"] == k) for k in ("budget_exceeded", "rate_limited")}


def test_replay_of_the_live_policy_matches_and_a_smaller_budget_refuses_more(box):
    gw = box.gw
    log_settled(gw)
    live = replay(gw.policy_path, gw.data_dir)
    assert live.compare_to_log() == 0, live.summary["differs_from_log"]
    limits = live.summary["limits"]
    logged = _counts(gw)
    assert logged["budget_exceeded"] > 0 and logged["rate_limited"] >= 3
    assert limits["budget_exceeded"] == logged["budget_exceeded"]
    assert limits["rate_limited"] == logged["rate_limited"]
    assert limits["newly_refused"] == 0 and limits["newly_admitted"] == 0 and limits["spend_prevented_usd"] == 0

    candidate = yaml.safe_load(gw.policy_path.read_text())
    candidate["budgets"]["limits"].append({"scope": "global", "usd": 0.1, "window": "month", "mode": "hard"})
    smaller = replay(candidate, gw.data_dir)
    lim = smaller.summary["limits"]
    assert lim["newly_refused"] > 0 and lim["spend_prevented_usd"] > 0
    assert lim["budget_exceeded"] > limits["budget_exceeded"]
    assert any(c["limit"] == "global monthly budget of $0.10" for c in lim["cutoffs"]), lim["cutoffs"]
    refused_ids = smaller.decisions.index[smaller.decisions["replay_admission"] == "budget_exceeded"]
    ran = {r["request_id"] for r in wait_for_rows(gw, "status = 200", 0)}
    assert sum(1 for rid in refused_ids if rid in ran) == lim["newly_refused"]


def test_spend_is_rebuilt_from_the_log_after_a_restart(box):
    gw = box.gw
    key, record = gw.create_key(name="rebuild", budget_usd=0.05, budget_window="day")
    for _ in range(3):
        chat(gw.client(key), max_tokens=5)
    with pytest.raises(openai.RateLimitError):
        chat(gw.client(key), max_tokens=5)
    rkey, _ = gw.create_key(name="rpm-restart", rpm=2)
    for _ in range(2):
        chat(gw.client(rkey))
    capped = gw.admin("GET", "/admin/virtual-keys?team=capped").json()["data"][0]["id"]
    before = {
        "rebuild": spend_of(gw, key, "key"),
        "capped": gw.admin("GET", f"/admin/virtual-keys/{capped}").json()["spend"],
    }
    assert before["rebuild"]["spent_usd"] == pytest.approx(3 * ACTUAL_USD)
    log_settled(gw)

    box.gw = gw = gw.restart()
    after = {
        "rebuild": spend_of(gw, key, "key"),
        "capped": gw.admin("GET", f"/admin/virtual-keys/{capped}").json()["spend"],
    }
    assert after == before
    assert after["rebuild"]["in_flight_usd"] == 0
    with pytest.raises(openai.RateLimitError) as err:
        chat(gw.client(key), max_tokens=5)
    assert err.value.code == "budget_exceeded" and f"key '{record['id']}' daily budget" in err.value.message
    with pytest.raises(openai.RateLimitError) as rate:  # the rate window was rebuilt too
        chat(gw.client(rkey))
    assert rate.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError):  # the team budget too
        chat(gw.client(gw.create_key(name="capped-c", team="capped")[0]), max_tokens=5)
    log_settled(gw)
    assert replay(gw.policy_path, gw.data_dir).compare_to_log() == 0
