"""More of a flaky upstream behind pass-through (``test_passthrough_hostile.py`` holds the fake
and the helpers): answers of the wrong shape — JSON nested deeper than any parser allows, an
array or an object whose ``output`` is a string, JSON to a streamed request and SSE to a JSON
one, ``response.completed`` whose ``response`` is null, SSE frames whose data is not an object.
Expectation as there: a 502 (or an ``error`` event) for an unreadable answer, one row per
request, a server that lives.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import fake_responses
import httpx
import pytest
import test_passthrough_hostile as hostile_mod
from aiohttp import web
from conftest import Gateway, policy_for, wait_for_rows
from test_passthrough_hostile import alive, assert_openai_error, one_row, post, sse_frames, stream

SHAPES = ["json-nested", "json-array", "output-string", "json-when-stream", "sse-when-json",
          "sse-null-response", "sse-non-object", "sse-silent", "cmpl-no-done", "cmpl-choices-string"]  # fmt: skip


class ShapeUpstream(hostile_mod.HostileUpstream):
    """The hostile fake, plus answers of the wrong shape named by the target model."""

    name = "shapes"

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = str(body.get("model"))
        plain = {**body, "model": "gpt-4o-mini"}
        if model == "json-nested":
            return web.Response(body=b"[" * 5000 + b"]" * 5000, content_type="application/json")
        if model == "json-array":
            return web.json_response([fake_responses.response(plain, "completed", [], None)])
        if model == "output-string":
            resp = fake_responses.response(plain, "completed", [], fake_responses.USAGE)
            return web.json_response({**resp, "output": "not a list"})
        if model == "json-when-stream":
            items = fake_responses.output_items(plain)
            return web.json_response(fake_responses.response(plain, "completed", items, fake_responses.USAGE))
        if model == "sse-silent":  # the headers, then nothing (past the provider's timeout_ms of 1.5 s)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await asyncio.sleep(4)
            return resp
        if model in ("sse-when-json", "sse-null-response", "sse-non-object"):
            return await self._odd_stream(request, model, plain)
        return await super().responses(request)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        if body.get("model") == "cmpl-choices-string":
            return web.json_response({"id": "cmpl-x", "object": "text_completion", "created": 1, "model": "m",
                                      "choices": "not a list", "usage": fake_responses.USAGE})  # fmt: skip
        if body.get("model") != "cmpl-no-done":
            return await super().completions(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        head = {"id": "cmpl-x", "object": "text_completion", "created": 1, "model": "m"}
        choice = {"text": "Half an ", "index": 0, "logprobs": None, "finish_reason": None}
        await resp.write(b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n")
        return resp  # a clean end: no finish_reason, no [DONE]

    async def _odd_stream(self, request: web.Request, model: str, body: dict[str, Any]) -> web.StreamResponse:
        events = fake_responses.stream_events(body)
        if model == "sse-null-response":
            events[-1] = {**events[-1], "response": None}
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for n, event in enumerate(events):
            if model == "sse-non-object" and n == 3:
                await resp.write(b"event: response.output_text.delta\ndata: 5\n\n")
                await resp.write(b'event: response.output_text.delta\ndata: ["a"]\n\n')
                await resp.write(b"event: response.output_text.delta\ndata: null\n\n")
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        return resp


@pytest.fixture(scope="module")
def shapes():
    fake = ShapeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(shapes, tmp_path_factory):
    policy = policy_for(shapes.base_url + "/v1")
    policy["routes"] = {s: {"targets": [{"provider": "local", "model": s}]} for s in SHAPES}
    policy["routes"]["cached-output-string"] = {
        "targets": [{"provider": "local", "model": "output-string"}],
        "cache": {"exact": {"ttl_s": 600}},
    }
    policy["pricing"] = {s: {"input_per_1m": 2.5, "output_per_1m": 10.0} for s in SHAPES}
    g = Gateway(tmp_path_factory.mktemp("shapes"), policy)
    yield g
    g.terminate()


@pytest.mark.parametrize("shape", ["json-nested", "json-array", "output-string"])
def test_a_json_answer_of_the_wrong_shape_is_a_502(gw, shape):
    r = post(gw, "/v1/responses", {"model": shape, "input": "hi"})
    assert_openai_error(r, range(502, 503))
    assert one_row(gw, r)["status"] == 502
    alive(gw)


def test_an_unreadable_answer_is_never_cached(gw):
    first = post(gw, "/v1/responses", {"model": "cached-output-string", "input": "cache me?"})
    second = post(gw, "/v1/responses", {"model": "cached-output-string", "input": "cache me?"})
    for r in (first, second):
        assert_openai_error(r, range(502, 503))
        assert r.headers.get("x-llmgw-cache") != "hit", r.text[:300]
        assert one_row(gw, r)["outcome"] == "upstream_error"


def test_a_completion_whose_choices_are_not_a_list_is_a_502(gw):
    r = post(gw, "/v1/completions", {"model": "cmpl-choices-string", "prompt": "hi"})
    assert_openai_error(r, range(502, 503))
    assert one_row(gw, r)["status"] == 502
    alive(gw)


def test_json_to_a_streamed_request_is_served_or_a_502(gw):
    status, frames, rid, _ = stream(gw, "json-when-stream")
    assert status in (200, 502), frames
    if status == 200:
        assert frames and frames[-1][0] in ("response.completed", "response.failed"), frames
    assert len(wait_for_rows(gw, f"client_request_id = '{rid}'")) == 1
    alive(gw)


def test_sse_to_a_json_request_is_served_or_a_502(gw):
    r = post(gw, "/v1/responses", {"model": "sse-when-json", "input": "hi"})
    if r.status_code == 200:
        assert r.json()["object"] == "response", r.text[:300]
    else:
        assert_openai_error(r, range(502, 503))
    one_row(gw, r)
    alive(gw)


def test_a_completed_event_without_its_response_is_one_row_and_no_crash(gw):
    status, frames, rid, _ = stream(gw, "sse-null-response")
    assert status == 200
    assert len(wait_for_rows(gw, f"client_request_id = '{rid}'")) == 1
    alive(gw)


def test_sse_frames_whose_data_is_not_an_object_end_the_stream_cleanly(gw):
    """Skipped (the stream completes, ok) or an upstream fault (error + response.failed, not ok):
    either way one row and a live server, never a crash mid-stream."""
    status, frames, rid, _ = stream(gw, "sse-non-object")
    names = [n for n, _ in frames]
    assert status == 200 and names[-1] in ("response.completed", "response.failed"), names
    outcome = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]["outcome"]
    assert (outcome == "ok") == (names[-1] == "response.completed"), (outcome, names)
    if names[-1] == "response.failed":
        assert names[-2] == "error"
    alive(gw)


def test_a_stream_whose_upstream_is_silent_after_its_headers_times_out(gw):
    status, frames, rid, took = stream(gw, "sse-silent")
    assert took < 3.8, took  # the upstream is silent 4 s; timeout_ms is 1.5 s
    if status == 200:
        assert frames[-1][0] == "response.failed", frames
    else:
        assert status in (502, 504), frames
    assert wait_for_rows(gw, f"client_request_id = '{rid}'")[0]["outcome"] != "ok"
    alive(gw)


def test_a_completions_stream_cut_without_done_ends_with_the_gateways_error_frame(gw):
    """docs/providers.md: completions streams end with the gateway's error frame, as translated
    ones do, when the upstream fails after the first byte."""
    rid = "hx-cmpl-no-done"
    with httpx.stream(
        "POST", f"{gw.url}/v1/completions", json={"model": "cmpl-no-done", "prompt": "hi", "stream": True},
        headers={"x-request-id": rid, "authorization": "Bearer vk-any"}, timeout=30,
    ) as r:  # fmt: skip
        text = r.read().decode()
    datas = [d for _, d in sse_frames(text)]
    assert datas[0]["choices"][0]["text"] == "Half an ", text  # relayed as it came, then the gateway's error
    assert isinstance(datas[-1], dict) and "error" in datas[-1], text
    assert wait_for_rows(gw, f"client_request_id = '{rid}'")[0]["outcome"] == "upstream_error"
    alive(gw)
