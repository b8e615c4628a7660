"""An upstream chat stream with an unparsable ``data:`` frame is an upstream fault, checked once for
every adapter where the gateway splits an upstream's SSE (``providers/sse.py``): after the first
byte the stream ends with the gateway's error frame (``upstream_unreachable``, no ``[DONE]``) and the
row says ``upstream_error``; before it, the next target is tried. Before the check the openai
adapter relayed the broken bytes as they came (the client's SDK failed on them, the row said ok)."""

from __future__ import annotations

import json

import openai
import pytest
from aiohttp import web
from conftest import Gateway, chat_stream_lines, policy_for, wait_for_rows
from fake_http import FakeServer

BROKEN = b'data: {"choices": [{"delta": {"content": \n\n'


class BrokenFrameUpstream(FakeServer):
    """A chat upstream: model ``broken-mid`` breaks its second frame, ``broken-first`` its first,
    ``not-an-object`` sends a JSON list; any other model streams cleanly."""

    name = "broken-frames"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body["model"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if model == "broken-first":
            await resp.write(BROKEN)
        for text, finish in (("Hello", None), (" there", "stop")):
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [choice]}  # fmt: skip
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if model == "broken-mid":
                await resp.write(BROKEN)
            if model == "not-an-object":
                await resp.write(b"data: [1, 2]\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    fake = BrokenFrameUpstream().start()
    policy = policy_for(fake.base_url + "/v1")
    policy["routes"] = {
        "broken-mid": {"targets": [{"provider": "local", "model": "broken-mid"}]},
        "not-an-object": {"targets": [{"provider": "local", "model": "not-an-object"}]},
        "broken-first": {"targets": [{"provider": "local", "model": "broken-first"},
                                     {"provider": "other", "model": "clean"}]},
    }  # fmt: skip
    g = Gateway(tmp_path_factory.mktemp("broken-frames"), policy)
    yield g
    g.terminate()
    fake.stop()


@pytest.mark.parametrize("model", ["broken-mid", "not-an-object"])
def test_an_unreadable_frame_after_the_first_byte_ends_the_stream_with_the_gateways_error(gw, model):
    r, lines, rid = chat_stream_lines(gw, "bf", model)
    assert r.status_code == 200
    assert all(line.startswith("data: {") for line in lines), lines  # nothing unreadable reaches the client
    events = [json.loads(line[6:]) for line in lines]
    assert events[0]["choices"][0]["delta"]["content"] == "Hello"
    assert events[-1]["error"]["code"] == "upstream_unreachable", events[-1]
    assert "data: [DONE]" not in lines
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] == "upstream_error" and row["status"] == 200
    assert row["attempts"][-1]["error"].startswith("protocol after first byte"), row["attempts"]


def test_an_unreadable_first_frame_fails_over_to_the_next_target(gw):
    r, lines, rid = chat_stream_lines(gw, "bf", "broken-first")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/clean"
    assert lines[-1] == "data: [DONE]"
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] == "ok" and row["attempts"][0]["error"].startswith("protocol"), row["attempts"]


def test_the_openai_sdk_sees_an_error_not_a_decoding_failure(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    stream = client.chat.completions.create(
        model="broken-mid", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="unreadable stream event"):
        for _ in stream:
            pass
