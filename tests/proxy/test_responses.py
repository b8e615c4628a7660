"""``POST /v1/responses`` through a real `llmgw serve`: the demo kind with the official openai
SDK, and everything the pipeline does to a Responses request as to a chat completion — the
exact cache (JSON and streamed hits), rate limits, input guardrails, a stream cut after its
first byte, refusals of stored state, bad input (always a 400 in OpenAI's format, logged), and
a replay of the live policy over the log with the Responses rows in it (0 differences).
(Every other provider kind: tests/providers/test_responses_conformance.py.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from conftest import Gateway, policy_for, wait_for_rows

from llmgw_kernel import load_policy, open_log, replay

LOCAL = [{"provider": "local", "model": "gpt-4o-mini"}]
FN_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    policy = policy_for(upstream.base_url)
    policy["routes"].update({
        "cached": {"targets": LOCAL, "cache": {"exact": {"ttl_s": 600}, "semantic": None}},
        "limited": {"targets": LOCAL},
        "blocker": {"targets": LOCAL, "guardrails": {"input": [
            {"type": "pii", "action": "block", "entities": ["VN_CCCD"], "languages": ["vi"], "name": "no-cccd"}]}},
        "tool-call": {"targets": [{"provider": "local", "model": "tool-call"}]},
    })  # fmt: skip
    policy["rate_limits"] = [{"scope": "route", "name": "limited", "rpm": 1}]
    g = Gateway(tmp_path_factory.mktemp("responses"), policy)
    yield g
    g.terminate()


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)


def row(gw: Gateway, request_id: str) -> dict:
    rows = wait_for_rows(gw, f"request_id = '{request_id}'")
    assert rows, request_id
    return rows[0]


# -- the demo kind -------------------------------------------------------------------------------
def test_demo_plain_and_streamed(gw):
    r = client(gw).responses.create(model="demo", input="hello there")
    assert r.output_text == "[llmgw demo] You said: hello there" and r.status == "completed"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (2, 6)
    evs = list(client(gw).responses.create(model="demo", input="hello there", stream=True))
    assert evs[0].type == "response.created" and evs[-1].type == "response.completed"
    assert "".join(e.delta for e in evs if e.type == "response.output_text.delta") == r.output_text
    assert evs[-1].response.output_text == r.output_text


def logged(gw: Gateway, raw: Any) -> dict[str, Any]:
    """The chat form the log keeps of a request (what an openai target gets is the body itself)."""
    return json.loads(row(gw, raw.headers["x-llmgw-request-id"])["request_body"])


def test_tool_choice_without_tools_is_not_sent(gw, upstream):
    raw = client(gw).responses.with_raw_response.create(
        model="gpt-4o-mini", input="hi", tool_choice="auto", parallel_tool_calls=False
    )
    chat = logged(gw, raw)
    assert "tool_choice" not in chat and chat["parallel_tool_calls"] is False
    assert upstream.requests[-1]["body"]["tool_choice"] == "auto"  # passed through: the upstream decides


def test_input_items_become_chat_messages(gw, upstream):
    image = "data:image/png;base64,iVBORw0KGgo="
    raw = client(gw).responses.with_raw_response.create(model="gpt-4o-mini", instructions="Brief.", input=[
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "input_text", "text": "what is this?"},
                                     {"type": "input_image", "image_url": image, "detail": "low"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Un chat.",
                                                              "annotations": []}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": "sure?"},
    ])  # fmt: skip
    assert upstream.requests[-1]["body"]["input"][3]["type"] == "reasoning"  # passed through as sent
    assert logged(gw, raw)["messages"] == [
        {"role": "system", "content": "Brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": image, "detail": "low"}}]},
        {"role": "assistant", "content": "Un chat."},
        {"role": "user", "content": "sure?"},
    ]  # fmt: skip


def test_demo_structured_output_and_unversioned_alias(gw):
    fmt = {"type": "json_schema", "name": "w", "schema": {"type": "object", "properties": {}}}
    raw = httpx.post(f"{gw.url}/responses", json={"model": "demo", "input": "hi", "text": {"format": fmt}})
    assert raw.status_code == 200 and raw.json()["object"] == "response"
    assert raw.json()["text"] == {"format": fmt}


# -- the pipeline's stages ------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_exact_cache_hits(gw, stream):
    text = f"cache me {stream}"
    answers, headers = [], []
    for _ in range(2):
        raw = client(gw).responses.with_raw_response.create(model="cached", input=text, stream=stream)
        parsed = raw.parse()
        answers.append(list(parsed)[-1].response.output_text if stream else parsed.output_text)
        headers.append(raw.headers["x-llmgw-cache"])
    assert headers == ["miss", "hit"] and answers[0] == answers[1] == "Hello from the fake upstream: " + text


def test_rate_limit_is_a_429(gw):
    client(gw).responses.create(model="limited", input="one")
    with pytest.raises(openai.RateLimitError) as exc:
        client(gw).responses.create(model="limited", input="two")
    assert exc.value.body["code"] == "rate_limit_exceeded"


def test_input_guardrail_blocks(gw):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.create(
            model="blocker", input=[{"role": "user", "content": "Số CCCD của tôi là 001203004567."}]
        )
    assert exc.value.body["code"] == "guardrail_blocked"


def test_tool_call_round_trip_on_an_openai_target(gw, upstream):
    raw = client(gw).responses.with_raw_response.create(
        model="tool-call", input="weather?", tools=[FN_TOOL], max_output_tokens=99
    )
    assert logged(gw, raw)["max_completion_tokens"] == 99  # what reasoning models need, on a chat target
    assert upstream.requests[-1]["body"]["max_output_tokens"] == 99  # the openai target's /responses: as sent
    call = raw.parse().output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    items = [
        {"role": "user", "content": "weather?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    answer = client(gw).responses.with_raw_response.create(model="tool-call", input=items, tools=[FN_TOOL])
    assert answer.parse().output_text == "The tool said: sunny"
    chat = logged(gw, answer)
    assert chat["messages"][1]["tool_calls"][0]["id"] == call.call_id
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": FN_TOOL["parameters"]}}
    ]
    assert upstream.requests[-1]["body"]["input"][2] == items[2]


def test_a_stream_cut_after_its_first_byte_ends_with_error_and_failed(gw):
    raw = client(gw).responses.with_raw_response.create(model="stream-cut", input="cut", stream=True)
    evs = list(raw.parse())
    assert [e.type for e in evs[-2:]] == ["error", "response.failed"]
    assert evs[-1].response.status == "failed" and evs[-1].response.error.code.startswith("upstream_")
    r = row(gw, raw.headers["x-llmgw-request-id"])
    assert (r["api"], r["status"], r["outcome"]) == ("responses", 200, "upstream_error")


# -- stored state ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "param"), [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
])  # fmt: skip
def test_stored_state_is_refused_clearly(gw, fields, param):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.create(model="demo", **{"input": "hi", **fields})
    assert exc.value.body["param"] == param and "storage" in exc.value.body["message"]


def test_store_false_and_absent_are_served(gw):
    assert client(gw).responses.create(model="demo", input="hi", store=False).status == "completed"
    assert client(gw).responses.create(model="demo", input="hi").store is False


# -- bad input: a 400 in OpenAI's format, never a 5xx ---------------------------------------------
BAD = [
    ({"model": "demo"}, "input"),
    ({"model": "demo", "input": 5}, "input"),
    ({"model": "demo", "input": []}, "input"),
    ({"model": "demo", "input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input"),
    ({"model": "demo", "input": [{"type": "web_search_call", "id": "x"}]}, "input[0].type"),
    ({"model": "demo", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].type"),
    ({"model": "demo", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "demo", "input": [{"role": "user", "content": 7}]}, "input[0].content"),
    ({"model": "demo", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "demo", "input": "x", "tools": "all"}, "tools"),
    ({"model": "demo", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "demo", "input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"model": "demo", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"model": "demo", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
    ({"model": "demo", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "demo", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "demo", "input": "x", "frobnicate": 1}, "frobnicate"),
    ({"model": 3, "input": "x"}, "model"),
    ({"model": "demo", "input": "x", "metadata": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
     "metadata.a[0]"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param"), BAD)
def test_bad_input_is_a_400_naming_the_place(gw, body, param):
    r = httpx.post(f"{gw.base_url}/responses", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    logged = row(gw, r.headers["x-llmgw-request-id"])
    assert (logged["api"], logged["status"], logged["outcome"]) == ("responses", 400, "client_error")


def test_not_json_and_too_large(gw):
    r = httpx.post(f"{gw.base_url}/responses", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(f"{gw.base_url}/responses", json={"model": "demo", "input": "x" * 70_000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(f"{gw.base_url}/responses", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]


# -- replay ---------------------------------------------------------------------------------------------
def test_replay_of_the_live_policy_over_responses_rows_has_no_differences(make_gateway, upstream):
    policy = policy_for(upstream.base_url)
    policy["routes"]["cached"] = {"targets": LOCAL, "cache": {"exact": {"ttl_s": 600}, "semantic": None}}
    g = make_gateway(policy)
    c = client(g)
    for i in range(30):
        c.responses.create(model="split", input=f"q{i % 7}", stream=i % 3 == 0)
        c.chat.completions.create(model="split", messages=[{"role": "user", "content": f"q{i % 7}"}])
        c.responses.create(model="cached", input=f"c{i % 4}", stream=i % 2 == 0)  # hits from the 5th on
    c.chat.completions.create(model="cached", messages=[{"role": "user", "content": "c1"}])  # a hit across APIs
    c.completions.create(model="split", prompt="legacy")
    c.responses.create(model="fallback", input="x")
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="split", input="x", store=True)
    g.terminate()
    result = replay(load_policy(g.policy_path), open_log(g.data_dir))
    assert result.summary["requests"] == 94
    assert result.compare_to_log() == 0
    con = open_log(g.data_dir)
    apis = con.sql("SELECT api, count(*) FROM requests GROUP BY api ORDER BY api").fetchall()
    assert apis == [("completions", 1), ("openai", 31), ("responses", 62)]
    hits = con.sql("SELECT api, count(*) FROM requests WHERE cache = 'hit' GROUP BY api ORDER BY api").fetchall()
    assert hits == [("openai", 1), ("responses", 26)]


def test_the_providers_page_lists_every_responses_field():
    from pathlib import Path

    from llmgw_kernel.proxy.completions import PASSED, REFUSED
    from llmgw_kernel.proxy.responses_request import FIELDS

    page = (Path(__file__).parents[2] / "docs" / "providers.md").read_text()
    section = page.split("## Responses API and legacy completions", 1)[1]
    missing = [name for name in [*FIELDS, *PASSED, *REFUSED] if f"`{name}" not in section]
    assert not missing, f"docs/providers.md does not list {missing}"
