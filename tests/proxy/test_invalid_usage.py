"""An upstream that reports invalid usage on the chat path (negative, fractional, a string, absurdly
large counts): the gateway treats it as unknown, as it does a missing usage (a stream's tokens are
counted and the row says ``usage_source = estimated``), so the client still gets its 200 and the
request is one row with no negative or absurd cost. Before ``providers/usage.py`` a negative count
was priced as a negative cost and the metrics raised in ``pipeline._finish``: a 500 and no row."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest
from aiohttp import web
from conftest import Gateway, policy_for, wait_for_rows
from fake_http import FakeServer

INVALID = {
    "usage-negative": {"prompt_tokens": -50, "completion_tokens": -70, "total_tokens": -120},
    "usage-fraction": {"prompt_tokens": 5.5, "completion_tokens": 2, "total_tokens": 7.5},
    "usage-string": {"prompt_tokens": "5", "completion_tokens": 2, "total_tokens": 7},
    "usage-huge": {"prompt_tokens": 10**30, "completion_tokens": 2, "total_tokens": 10**30 + 2},
    "usage-cached-negative": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                              "prompt_tokens_details": {"cached_tokens": -3}},
}  # fmt: skip


class BadUsageUpstream(FakeServer):
    """An OpenAI chat upstream whose answers carry the usage its model name picks from ``INVALID``."""

    name = "bad-usage"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        usage = INVALID[body["model"]]
        head = {"id": "chatcmpl-x", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}
            return web.json_response({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for text, finish in (("Hello", None), (" there", "stop")):
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            chunk = {**head, "object": "chat.completion.chunk", "choices": [choice]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
        return resp


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    fake = BadUsageUpstream().start()
    policy = policy_for(fake.base_url + "/v1")
    policy["routes"] = {m: {"targets": [{"provider": "local", "model": m}]} for m in INVALID}
    policy["pricing"] = {m: {"input_per_1m": 2.5, "output_per_1m": 10.0} for m in INVALID}
    policy["budgets"] = {"timezone": "UTC", "limits": [{"scope": "global", "usd": 100.0, "window": "day"}]}
    g = Gateway(tmp_path_factory.mktemp("bad-usage"), policy)
    yield g
    g.terminate()
    fake.stop()


def _row(gw: Gateway, rid: str) -> dict[str, Any]:
    rows = wait_for_rows(gw, f"client_request_id = '{rid}'")
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("model", sorted(INVALID))
def test_a_whole_answer_with_invalid_usage_is_served_and_logged_without_tokens(gw, model):
    rid = f"iu-{uuid.uuid4().hex[:12]}"
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": rid}
    )
    assert answer.choices[0].message.content == "Hello there"
    row = _row(gw, rid)
    assert row["outcome"] == "ok" and row["status"] == 200
    assert row["prompt_tokens"] is None and row["completion_tokens"] is None and row["cost_usd"] is None, row
    assert row["usage_source"] == "none"


@pytest.mark.parametrize("model", sorted(INVALID))
def test_a_stream_with_invalid_usage_is_served_and_its_tokens_estimated(gw, model):
    rid = f"iu-{uuid.uuid4().hex[:12]}"
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    chunks = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers={"x-request-id": rid}
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    row = _row(gw, rid)
    assert row["outcome"] == "ok" and row["status"] == 200
    assert row["usage_source"] == "estimated", row
    assert 0 < row["prompt_tokens"] < 100 and 0 < row["completion_tokens"] < 100, row
    assert 0 < row["cost_usd"] < 0.01, row
