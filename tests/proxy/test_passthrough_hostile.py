"""Pass-through of ``/v1/responses`` and ``/v1/completions`` met the way a hostile client and a
flaky upstream meet it, not the way it was built: malformed bodies (wrong types, deep nesting,
oversized, unknown items, non-UTF-8), and an upstream that answers garbage JSON, HTML with a
200, broken or out-of-order SSE, an ``error`` event mid-stream, a stream without
``response.completed``, a stall after the first byte, a huge delta, missing or negative usage;
and a client that leaves mid-stream. What llmgw promises (docs/providers.md, "Failures"; the
error format of docs/errors): a 4xx in OpenAI's error format for bad client input, a 502/504 or
an ``error`` event for upstream faults, one log row per request, a server that never dies, and
a log that replays. A test marked ``xfail(strict=True)`` is a defect found here.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import fake_responses
import httpx
import pytest
from aiohttp import web
from conftest import Gateway, policy_for, wait_for_rows
from fake_http import FakeServer

from llmgw_kernel import load_policy, open_log, replay

HUGE_DELTA = 2 << 20  # 2 MiB of text in one delta


def _frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class HostileUpstream(FakeServer):
    """An OpenAI-shaped upstream whose target model names a fault; other models answer as the
    well-behaved fake does (``fake_responses``)."""

    name = "hostile"

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/completions", self.completions)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = str(body.get("model"))
        plain = {**body, "model": "gpt-4o-mini"}
        if model == "garbage-json":
            return web.Response(body=b'{"id": "resp_x", "output": [', content_type="application/json")
        if model == "html-200":
            return web.Response(body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if model == "usage-missing":
            items = fake_responses.output_items(plain)
            return web.json_response(fake_responses.response(plain, "completed", items, None))
        if model == "usage-negative":
            items = fake_responses.output_items(plain)
            usage = {"input_tokens": -50, "output_tokens": -70, "total_tokens": -120}
            return web.json_response(fake_responses.response(plain, "completed", items, usage))
        if model.startswith("sse-"):
            return await self._stream(request, model, plain)
        return await fake_responses.answer_responses(request, body)

    async def _stream(self, request: web.Request, model: str, body: dict[str, Any]) -> web.StreamResponse:
        events = fake_responses.stream_events(body)
        if model == "sse-no-completed":
            events = events[:-1]
        elif model == "sse-out-of-order":  # the completion first, then the rest
            events = [events[-1], *events[:-1]]
        elif model == "sse-error-mid":
            events = [*events[:5], {"type": "error", "code": "server_error", "message": "boom", "param": None,
                                    "sequence_number": 5}]  # fmt: skip
        elif model == "sse-huge-delta":
            at = {"output_index": 0, "item_id": "msg_fake_1", "content_index": 0}
            big = {"type": "response.output_text.delta", **at, "delta": "a" * HUGE_DELTA, "logprobs": []}
            events = [*events[:4], big, *events[4:]]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for n, event in enumerate(events):
                if model == "sse-broken" and n == 4:
                    await resp.write(b'event: response.output_text.delta\ndata: {"type": "response.outp\n\n')
                if model == "sse-stall" and n == 4:
                    await asyncio.sleep(6)  # the provider's timeout_ms is 1500
                if model == "sse-slow":
                    await asyncio.sleep(0.3)
                await resp.write(_frame(event))
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled += 1
            raise
        return resp

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = str(body.get("model"))
        if model == "garbage-json":
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if model == "html-200":
            return web.Response(body=b"<html>oops</html>", content_type="text/html")
        if model == "sse-broken":
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            head = {"id": "cmpl-x", "object": "text_completion", "created": 1, "model": "m"}
            choice = {"text": "Hi ", "index": 0, "logprobs": None, "finish_reason": None}
            await resp.write(b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n")
            await resp.write(b'data: {"choices": [{"text": \n\n')
            await resp.write(b"data: [DONE]\n\n")
            return resp
        return await fake_responses.answer_completions(request, {**body, "model": "gpt-4o-mini"})


FAULTS = ["garbage-json", "html-200", "usage-missing", "usage-negative", "sse-no-completed", "sse-out-of-order",
          "sse-error-mid", "sse-huge-delta", "sse-broken", "sse-stall", "sse-slow"]  # fmt: skip


@pytest.fixture(scope="module")
def hostile():
    fake = HostileUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(hostile, tmp_path_factory):
    policy = policy_for(hostile.base_url + "/v1")
    policy["routes"] = {"plain": {"targets": [{"provider": "local", "model": "gpt-4o-mini"}]}}
    policy["routes"].update({f: {"targets": [{"provider": "local", "model": f}]} for f in FAULTS})
    policy["pricing"] = {m: {"input_per_1m": 2.5, "output_per_1m": 10.0} for m in ["gpt-4o-mini", *FAULTS]}
    policy["budgets"] = {"timezone": "UTC", "limits": [{"scope": "global", "usd": 100.0, "window": "day"}]}
    g = Gateway(tmp_path_factory.mktemp("hostile"), policy)
    yield g
    g.terminate()


def post(gw: Gateway, path: str, body: Any = None, content: bytes | None = None, **kw: Any) -> httpx.Response:
    rid = f"hx-{uuid.uuid4().hex[:12]}"
    headers = {"x-request-id": rid, "content-type": "application/json", "authorization": "Bearer vk-any"}
    if content is None:
        content = json.dumps(body).encode()
    r = httpx.post(f"{gw.url}{path}", content=content, headers=headers, timeout=30, **kw)
    r.extensions["hx_rid"] = rid  # type: ignore[index]
    return r


def one_row(gw: Gateway, r: httpx.Response) -> dict[str, Any]:
    rows = wait_for_rows(gw, f"client_request_id = '{r.extensions['hx_rid']}'")
    assert len(rows) == 1, rows
    return rows[0]


def assert_openai_error(r: httpx.Response, status_range: range) -> dict[str, Any]:
    assert r.status_code in status_range, (r.status_code, r.text[:500])
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and "type" in err and "code" in err, err
    return err


def alive(gw: Gateway) -> None:
    assert gw.proc.poll() is None, gw.server_log()[-3000:]
    assert httpx.get(f"{gw.url}/health", timeout=5).status_code == 200


def sse_frames(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for frame in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.strip().split("\n") if ": " in line)
        if "data" in lines:
            data = lines["data"]
            out.append((lines.get("event", ""), data if data == "[DONE]" else json.loads(data)))
    return out


# -- a hostile client ---------------------------------------------------------------------------------
MALFORMED_RESPONSES = {
    "input-int": {"model": "plain", "input": 42},
    "input-object": {"model": "plain", "input": {"role": "user", "content": "x"}},
    "input-list-of-ints": {"model": "plain", "input": [1, 2, 3]},
    "content-int": {"model": "plain", "input": [{"role": "user", "content": 7}]},
    "tools-string": {"model": "plain", "input": "x", "tools": "web_search"},
    "tools-list-of-strings": {"model": "plain", "input": "x", "tools": ["web_search"]},
    "function-tool-no-name": {"model": "plain", "input": "x", "tools": [{"type": "function"}]},
    "instructions-list": {"model": "plain", "input": "x", "instructions": ["a", "b"]},
    "instructions-object": {"model": "plain", "input": "x", "instructions": {"text": "a"}},
    "model-int": {"model": 5, "input": "x"},
    "model-missing": {"input": "x"},
    "stream-string": {"model": "plain", "input": "x", "stream": "yes"},
    "metadata-list": {"model": "plain", "input": "x", "metadata": ["a"]},
    "body-list": [{"model": "plain", "input": "x"}],
    "body-string": "hello",
    "function-call-output-no-call-id": {"model": "plain", "input": [{"type": "function_call_output", "output": "x"}]},
    "role-unknown": {"model": "plain", "input": [{"role": "wizard", "content": "x"}]},
    "part-type-unknown": {"model": "plain", "input": [{"role": "user", "content": [{"type": "input_hologram"}]}]},
    "max-output-tokens-string": {"model": "plain", "input": "x", "max_output_tokens": "ten"},
    "temperature-nan-string": {"model": "plain", "input": "x", "temperature": "NaN"},
}  # fmt: skip


@pytest.mark.parametrize("name", list(MALFORMED_RESPONSES))
def test_a_malformed_responses_body_is_a_4xx_in_openais_format(gw, hostile, name):
    before = len(hostile.requests)
    r = post(gw, "/v1/responses", MALFORMED_RESPONSES[name])
    # either refused with OpenAI's error (never a 5xx), or passed to the upstream (its 400 is the authority)
    if r.status_code != 200:
        assert_openai_error(r, range(400, 500))
    else:
        assert len(hostile.requests) == before + 1
    one_row(gw, r)
    alive(gw)


MALFORMED_COMPLETIONS = {
    "prompt-object": {"model": "plain", "prompt": {"text": "x"}},
    "prompt-list-of-dicts": {"model": "plain", "prompt": [{"a": 1}]},
    "prompt-missing": {"model": "plain"},
    "n-string": {"model": "plain", "prompt": "x", "n": "two"},
    "echo-string": {"model": "plain", "prompt": "x", "echo": "true"},
    "stop-int": {"model": "plain", "prompt": "x", "stop": 5},
    "max-tokens-negative": {"model": "plain", "prompt": "x", "max_tokens": -1},
}


@pytest.mark.parametrize("name", list(MALFORMED_COMPLETIONS))
def test_a_malformed_completions_body_is_a_4xx_in_openais_format(gw, hostile, name):
    before = len(hostile.requests)
    r = post(gw, "/v1/completions", MALFORMED_COMPLETIONS[name])
    if r.status_code != 200:
        assert_openai_error(r, range(400, 500))
    else:
        assert len(hostile.requests) == before + 1
    one_row(gw, r)
    alive(gw)


def test_deeply_nested_input_is_refused_not_a_crash(gw):
    nested = "[" * 5000 + '"x"' + "]" * 5000  # deeper than Python's recursion limit
    content = ('{"model": "plain", "input": [{"role": "user", "content": ' + nested + "}]}").encode()
    assert len(content) < 65536
    r = post(gw, "/v1/responses", content=content)
    assert_openai_error(r, range(400, 500))
    alive(gw)


def test_a_ten_megabyte_input_is_a_413_in_openais_format(gw):
    r = post(gw, "/v1/responses", {"model": "plain", "input": "a" * (10 << 20)})
    err = assert_openai_error(r, range(413, 414))
    assert "bytes" in err["message"] or "large" in err["message"].lower()
    alive(gw)


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/completions"])
def test_a_non_utf8_body_is_a_400(gw, path):
    field = "input" if path == "/v1/responses" else "prompt"
    content = b'{"model": "plain", "' + field.encode() + b'": "caf\xe9 \xff\xfe"}'
    r = post(gw, path, content=content)
    assert_openai_error(r, range(400, 401))
    alive(gw)


def test_unknown_input_item_types_are_the_providers_to_judge(gw, hostile):
    """docs/providers.md: unknown fields and items pass through; the provider is the authority."""
    before = len(hostile.requests)
    body = {"model": "plain", "input": [{"type": "hologram_call", "id": "h1"}, {"role": "user", "content": "hi"}]}
    r = post(gw, "/v1/responses", body)
    assert r.status_code == 200, r.text
    assert hostile.requests[before]["body"]["input"][0] == {"type": "hologram_call", "id": "h1"}
    assert one_row(gw, r)["outcome"] == "ok"


# -- a flaky upstream: JSON -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/responses", "/v1/completions"])
@pytest.mark.parametrize("fault", ["garbage-json", "html-200"])
def test_an_unreadable_200_from_the_upstream_is_a_502(gw, path, fault):
    field = "input" if path == "/v1/responses" else "prompt"
    r = post(gw, path, {"model": fault, field: "hi"})
    assert_openai_error(r, range(502, 503))
    assert "<html>" not in r.text
    row = one_row(gw, r)
    assert row["outcome"] != "ok" and row["status"] == 502
    alive(gw)


def test_missing_usage_is_served_and_logged_without_tokens(gw):
    r = post(gw, "/v1/responses", {"model": "usage-missing", "input": "hi"})
    assert r.status_code == 200 and r.json()["output"][0]["type"] == "message"
    row = one_row(gw, r)
    assert row["outcome"] == "ok"
    alive(gw)


def test_negative_usage_is_not_a_500_and_is_one_row(gw):
    r = post(gw, "/v1/responses", {"model": "usage-negative", "input": "hi"})
    assert r.status_code != 500, r.text
    row = one_row(gw, r)
    assert (row["prompt_tokens"] or 0) >= 0 and (row["completion_tokens"] or 0) >= 0, row
    assert (row["cost_usd"] or 0) >= 0, row
    alive(gw)


# -- a flaky upstream: streams ------------------------------------------------------------------------
def stream(gw: Gateway, route: str, timeout: float = 30) -> tuple[int, list[tuple[str, Any]], str, float]:
    rid = f"hx-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    with httpx.stream(
        "POST", f"{gw.url}/v1/responses", json={"model": route, "input": "stream me", "stream": True},
        headers={"x-request-id": rid, "authorization": "Bearer vk-any"}, timeout=timeout,
    ) as r:  # fmt: skip
        text = r.read().decode()
        status = r.status_code
    return status, sse_frames(text) if status == 200 else [("", text)], rid, time.monotonic() - t0


def ends_in_failure(frames: list[tuple[str, Any]]) -> bool:
    names = [n for n, _ in frames]
    return "error" in names and names[-1] == "response.failed"


def test_an_error_event_mid_stream_ends_in_error_and_response_failed(gw):
    status, frames, rid, _ = stream(gw, "sse-error-mid")
    assert status == 200 and ends_in_failure(frames), frames[-3:]
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] != "ok"
    alive(gw)


def test_a_stream_without_response_completed_ends_in_failure(gw):
    status, frames, rid, _ = stream(gw, "sse-no-completed")
    assert status == 200 and ends_in_failure(frames), [n for n, _ in frames]
    assert "response.output_text.delta" in [n for n, _ in frames]  # what came before the cut was relayed
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] == "upstream_error" and row["status"] == 200, row  # as a cut after the first byte
    assert "after first byte" in row["attempts"][-1]["error"], row["attempts"]
    alive(gw)


def test_a_broken_sse_frame_ends_the_stream_in_failure(gw):
    """An unparsable frame is an upstream fault (``providers/sse.py``), not dropped in silence: a
    streaming client would show a text missing a piece while ``response.completed`` says otherwise."""
    status, frames, rid, _ = stream(gw, "sse-broken")
    assert status == 200 and ends_in_failure(frames), [n for n, _ in frames]
    assert "response.completed" not in [n for n, _ in frames]
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] == "upstream_error" and "after first byte" in row["attempts"][-1]["error"], row
    alive(gw)


def test_a_stream_that_stalls_after_its_first_byte_is_ended_by_the_read_timeout(gw):
    status, frames, rid, took = stream(gw, "sse-stall")
    assert status == 200 and ends_in_failure(frames), [n for n, _ in frames]
    assert took < 5.5, took  # the upstream stalls 6 s; timeout_ms is 1.5 s
    row = wait_for_rows(gw, f"client_request_id = '{rid}'")[0]
    assert row["outcome"] != "ok"
    alive(gw)


def test_events_out_of_order_are_relayed_or_failed_never_a_crash(gw):
    status, frames, rid, _ = stream(gw, "sse-out-of-order")
    assert status == 200
    assert len(wait_for_rows(gw, f"client_request_id = '{rid}'")) == 1
    alive(gw)


def test_a_huge_single_delta_is_relayed_whole(gw):
    status, frames, rid, _ = stream(gw, "sse-huge-delta")
    assert status == 200
    deltas = [d["delta"] for n, d in frames if n == "response.output_text.delta"]
    assert max(len(d) for d in deltas) == HUGE_DELTA
    assert frames[-1][0] == "response.completed"
    assert wait_for_rows(gw, f"client_request_id = '{rid}'")[0]["outcome"] == "ok"
    alive(gw)


def test_a_completions_stream_with_a_broken_frame_ends_with_the_gateways_error_frame(gw):
    rid = f"hx-{uuid.uuid4().hex[:12]}"
    with httpx.stream(
        "POST", f"{gw.url}/v1/completions", json={"model": "sse-broken", "prompt": "hi", "stream": True},
        headers={"x-request-id": rid, "authorization": "Bearer vk-any"}, timeout=30,
    ) as r:  # fmt: skip
        text = r.read().decode()
    assert r.status_code == 200, text
    frames = [d for _, d in sse_frames(text)]
    assert isinstance(frames[-1], dict) and frames[-1]["error"]["code"] == "upstream_unreachable", text[-500:]
    assert "[DONE]" not in text and frames[0]["choices"][0]["text"] == "Hi "  # what came before, as it came
    rows = wait_for_rows(gw, f"client_request_id = '{rid}'")
    assert len(rows) == 1 and rows[0]["outcome"] == "upstream_error", rows
    alive(gw)


def test_a_client_that_leaves_mid_stream_is_one_abandoned_row_and_settles_its_budget(gw, hostile):
    rid = f"hx-{uuid.uuid4().hex[:12]}"
    before = hostile.cancelled
    with httpx.stream(
        "POST", f"{gw.url}/v1/responses", json={"model": "sse-slow", "input": "leave", "stream": True},
        headers={"x-request-id": rid, "authorization": "Bearer vk-any"}, timeout=30,
    ) as r:  # fmt: skip
        lines = r.iter_lines()
        assert next(lines).startswith("event: response.created")
    deadline = time.monotonic() + 8
    while hostile.cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hostile.cancelled == before + 1  # the upstream call was cancelled, not left running
    rows = wait_for_rows(gw, f"client_request_id = '{rid}'")
    assert len(rows) == 1 and rows[0]["outcome"] == "abandoned" and rows[0]["status"] == 499
    metrics = httpx.get(f"{gw.url}/metrics", timeout=5).text
    in_flight = [ln for ln in metrics.splitlines() if ln.startswith("llmgw_budget_in_flight_usd{")]
    assert in_flight and all(float(ln.rsplit(" ", 1)[1]) == 0.0 for ln in in_flight), in_flight
    alive(gw)


# -- after all of it ----------------------------------------------------------------------------------
def test_zz_the_log_of_all_this_replays_with_the_live_policy(gw):
    time.sleep(0.5)
    con = open_log(gw.data_dir)
    n = con.sql("SELECT count(*) FROM requests").fetchall()[0][0]
    con.close()
    assert n > 40
    result = replay(load_policy(gw.policy_path), open_log(gw.data_dir))
    assert result.summary["requests"] == n
    alive(gw)
