"""An upstream chat stream that ends — even cleanly, at EOF — without ``[DONE]`` and without a
``finish_reason`` in its last chunk was cut (``providers/sse.py`` :func:`ended`, one rule for the
openai adapter's chat streams and the completions pass-through): after the first byte the client's
stream ends with the gateway's error frame (no ``[DONE]``) and the row says ``upstream_error``;
before it, the next target is tried. A stream whose last chunk names a ``finish_reason`` is whole
even without ``[DONE]`` (some OpenAI-compatible servers never send it). Before the rule the cut
stream was relayed as it came and logged ok."""

from __future__ import annotations

import json

import openai
import pytest
from aiohttp import web
from conftest import Gateway, chat_stream_lines, policy_for, wait_for_rows
from fake_http import FakeServer


class CuttingUpstream(FakeServer):
    """A chat upstream: ``cut`` sends one chunk then ends cleanly (no finish_reason, no [DONE]),
    ``empty`` ends at once, ``finish-only`` ends with a finish_reason but no [DONE]; any other
    model streams whole."""

    name = "cutting"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        model = (await self.record(request))["model"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if model == "empty":
            return resp
        steps = [("Half an ", None)] if model == "cut" else [("Hello", None), (" there", "stop")]
        for text, finish in steps:
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [choice]}  # fmt: skip
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if model not in ("cut", "finish-only"):
            await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    fake = CuttingUpstream().start()
    policy = policy_for(fake.base_url + "/v1")
    policy["routes"] = {
        "cut": {"targets": [{"provider": "local", "model": "cut"}]},
        "finish-only": {"targets": [{"provider": "local", "model": "finish-only"}]},
        "empty": {"targets": [{"provider": "local", "model": "empty"}, {"provider": "other", "model": "whole"}]},
    }
    g = Gateway(tmp_path_factory.mktemp("cutting"), policy)
    yield g
    g.terminate()
    fake.stop()


def test_a_chat_stream_cut_without_done_ends_with_the_gateways_error(gw):
    r, lines, rid = chat_stream_lines(gw, "cut", "cut")
    assert r.status_code == 200
    events = [json.loads(line[6:]) for line in lines]
    assert events[0]["choices"][0]["delta"]["content"] == "Half an "
    assert events[-1]["error"]["code"] == "upstream_unreachable", events[-1]
    assert "data: [DONE]" not in lines
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] == "upstream_error" and row["status"] == 200
    assert row["attempts"][-1]["error"].startswith("protocol after first byte"), row["attempts"]


def test_the_openai_sdk_sees_the_cut_as_an_error(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    stream = client.chat.completions.create(model="cut", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError, match=r"without `\[DONE\]`"):
        for _ in stream:
            pass


def test_a_stream_that_ends_with_a_finish_reason_but_no_done_is_whole(gw):
    r, lines, rid = chat_stream_lines(gw, "cut", "finish-only")
    assert r.status_code == 200
    assert json.loads(lines[-1][6:])["choices"][0]["finish_reason"] == "stop", lines
    assert wait_for_rows(gw, f"client_request_id = '{rid}'")[0]["outcome"] == "ok"


def test_a_stream_that_ends_before_any_chunk_fails_over(gw):
    r, lines, rid = chat_stream_lines(gw, "cut", "empty")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/whole"
    assert lines[-1] == "data: [DONE]"
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] == "ok" and row["attempts"][0]["error"].startswith("protocol"), row["attempts"]
