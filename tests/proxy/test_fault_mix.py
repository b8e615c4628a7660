"""1,000 concurrent requests over targets that fail at random (500, 503, 429, resets, cut
streams, hangs), with one healthy target at the end of the chain: no client sees a failure."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from conftest import policy_for, wait_for_rows

N = 1000
CONCURRENCY = 50
STREAM_EVERY = 3  # every third request streams


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    from conftest import Gateway

    policy = policy_for(upstream.base_url)
    policy["routes"]["mix"] = {
        "targets": [
            {"provider": "local", "model": "chaos-40-a"},
            {"provider": "local", "model": "chaos-40-b"},
            {"provider": "other", "model": "gpt-4o"},
        ],
        "retry": {"attempts": 2, "backoff_ms": 5},
        "timeout_ms": 500,
        "breaker": {"failures": 200, "window_s": 5, "cooldown_s": 1},
    }
    g = Gateway(tmp_path_factory.mktemp("mix"), policy)
    yield g
    g.terminate()


async def _one(session: aiohttp.ClientSession, url: str, i: int) -> str | None:
    """None if the client got a complete, successful answer; else what went wrong."""
    stream = i % STREAM_EVERY == 0
    body = {"model": "mix", "messages": [{"role": "user", "content": f"q{i}"}], "stream": stream}
    async with session.post(url, json=body, headers={"x-request-id": f"mix-{i}"}) as r:
        text = await r.text()
    if r.status != 200:
        return f"{i}: HTTP {r.status} {text[:200]}"
    if not stream:
        return None if json.loads(text)["choices"][0]["message"]["content"] else f"{i}: empty answer"
    lines = [line for line in text.split("\n") if line.startswith("data: ")]
    if lines[-1] != "data: [DONE]" or any('"error"' in line for line in lines):
        return f"{i}: broken stream {lines[-2:]}"
    return None


async def _run(base_url: str) -> list[str]:
    gate = asyncio.Semaphore(CONCURRENCY)
    url = f"{base_url}/chat/completions"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def bounded(i: int) -> str | None:
            async with gate:
                return await _one(session, url, i)

        results = await asyncio.gather(*(bounded(i) for i in range(N)))
    return [r for r in results if r is not None]


def test_a_thousand_requests_through_faults_end_with_zero_client_visible_failures(gw, upstream):
    before = {m: upstream.counts[m] for m in ("chaos-40-a", "chaos-40-b", "gpt-4o")}
    t0 = time.monotonic()
    failures = asyncio.run(_run(gw.base_url))
    elapsed = time.monotonic() - t0
    assert failures == [], failures[:10]
    assert elapsed < 60
    calls = {m: upstream.counts[m] - before[m] for m in before}
    assert calls["chaos-40-a"] >= N * 0.5  # the faulty targets did take (and fail) traffic
    rows = wait_for_rows(gw, "route = 'mix'", n=N, timeout=10)
    assert len(rows) == N and {r["outcome"] for r in rows} == {"ok"}
    retried = sum(1 for r in rows if len(r["attempts"]) > 1)
    served_by = {r["target"] for r in rows}
    assert retried > N * 0.2 and served_by == {"local/chaos-40-a", "local/chaos-40-b", "other/gpt-4o"}
