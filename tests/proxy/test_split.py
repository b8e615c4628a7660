"""A 70/30 split over 1,000 requests through a real server: within ±3 points, and replayed
identically. Each request carries its own session id and the route is sticky on it, so the
draws are a fixed function of (policy version, session) and the test cannot flip between runs
(with the gateway's random request ids a ±3-point bound would fail about 4% of the time)."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from conftest import policy_for

from llmgw_kernel import load_policy, open_log, replay

N = 1000


async def _send(base_url: str) -> list[str]:
    gate = asyncio.Semaphore(32)

    async def one(session: aiohttp.ClientSession, i: int) -> str:
        body = {"model": "split", "messages": [{"role": "user", "content": f"q{i}"}], "metadata": {"session": f"s-{i}"}}
        async with gate, session.post(f"{base_url}/chat/completions", json=body) as r:
            assert r.status == 200, await r.text()
            return r.headers["x-llmgw-target"]

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session, i) for i in range(N)))


def test_a_70_30_split_holds_and_replays_identically(make_gateway, upstream):
    policy = policy_for(upstream.base_url)
    policy["routes"]["split"]["sticky"] = "metadata.session"
    gw = make_gateway(policy)
    served = Counter(asyncio.run(_send(gw.base_url)))
    share = served["local/gpt-4o-mini"] / N
    assert abs(share - 0.70) <= 0.03, served
    assert served["local/gpt-4o-mini"] + served["other/gpt-4o"] == N
    gw.terminate()
    result = replay(load_policy(gw.policy_path), open_log(gw.data_dir))
    assert result.summary["requests"] == N
    assert result.compare_to_log() == 0
    assert result.summary["routing"]["first_target_share"]["local/gpt-4o-mini"] == share
