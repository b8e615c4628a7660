"""``POST /v1/messages`` through a real `llmgw serve`, driven by the official anthropic SDK,
served by an OpenAI-format target (fake_openai), an Anthropic target (fake_anthropic, strict)
and the demo provider."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anthropic
import httpx
import pytest
from conftest import UPSTREAM_KEY, Gateway, policy_for, wait_for_rows

sys.path.insert(0, str(Path(__file__).parent.parent))
from fake_anthropic import FakeAnthropic  # noqa: E402

PROVIDER_KEY = "sk-ant-provider-0123456789abcdefghij"
CLIENT_KEY = "vk-client-key-must-never-travel-upstream"
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]  # fmt: skip
ROUTES = {
    "claude": {"targets": [{"provider": "claude", "model": "claude-sonnet"}]},
    "claude-tool": {"targets": [{"provider": "claude", "model": "claude-tool"}]},
    "claude-overloaded": {"targets": [{"provider": "claude", "model": "claude-overloaded"}]},
    "tool-call": {"targets": [{"provider": "local", "model": "tool-call"}]},
    "overloaded": {"targets": [{"provider": "local", "model": "status-503"}]},
}
# route -> (expected text for "hello there", input tokens, output tokens) per target kind
PLAIN = {
    "gpt-4o-mini": ("Hello from the fake upstream: hello there", 11, 7),
    "claude": ("Claude heard: hello there", 21, 9),
    "demo": ("[llmgw demo] You said: hello there", 2, 6),
}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    fake = FakeAnthropic(PROVIDER_KEY).start()
    policy = policy_for(upstream.base_url)
    policy["providers"]["claude"] = {
        "kind": "anthropic",
        "base_url": fake.base_url,
        "api_key_env": "ANTHROPIC_TEST_KEY",
    }
    policy["routes"].update(ROUTES)
    g = Gateway(tmp_path_factory.mktemp("inbound"), policy, env={"ANTHROPIC_TEST_KEY": PROVIDER_KEY})
    g.fake = fake  # type: ignore[attr-defined]
    yield g
    g.terminate()
    fake.stop()


def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)


def hello(**kw):
    return {"max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}], **kw}


@pytest.mark.parametrize("route", list(PLAIN))
def test_plain_answer_and_usage(gw, route):
    raw = client(gw).messages.with_raw_response.create(model=route, **hello())
    msg = raw.parse()
    text, tokens_in, tokens_out = PLAIN[route]
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == text
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (tokens_in, tokens_out)
    assert msg._request_id == raw.headers["x-llmgw-request-id"]


def test_openai_target_gets_a_valid_openai_request_and_never_the_client_key(gw, upstream):
    client(gw).messages.create(
        model="gpt-4o-mini", system="Be brief.", stop_sequences=["END"], metadata={"user_id": "u-7"},
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5}, **hello(),
    )  # fmt: skip
    sent = upstream.requests[-1]
    assert sent["body"] == {
        "model": "gpt-4o-mini",
        "max_tokens": 100,
        "stop": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "user": "u-7",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
    }  # fmt: skip  (top_k dropped: OpenAI has none)
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not any(k.lower() == "x-api-key" for k in sent["headers"])
    assert CLIENT_KEY not in json.dumps(sent)


def test_anthropic_target_round_trip_keeps_system_usage_and_its_own_key(gw):
    msg = client(gw).messages.create(model="claude", system=[{"type": "text", "text": "Be brief."}], **hello())
    assert msg.content[0].text == "(with system) Claude heard: hello there"
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (21, 4, 9)
    sent = gw.fake.requests[-1]
    assert sent["headers"]["x-api-key"] == PROVIDER_KEY and CLIENT_KEY not in json.dumps(sent)
    assert sent["body"]["system"] == [{"type": "text", "text": "Be brief."}] and sent["body"]["max_tokens"] == 100


@pytest.mark.parametrize("route", list(PLAIN))
def test_stream_helper(gw, route):
    text, tokens_in, tokens_out = PLAIN[route]
    with client(gw).messages.stream(model=route, **hello()) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed.rstrip() == text and final.content[0].text.rstrip() == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (tokens_in, tokens_out)


def test_create_stream_event_sequence(gw):
    events = list(client(gw).messages.create(model="claude", stream=True, **hello()))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 9
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Claude heard: hello there"


@pytest.mark.parametrize("route", ["tool-call", "claude-tool"])
def test_tool_use_both_directions(gw, route):
    c = client(gw)
    ask = [{"role": "user", "content": "weather in Paris?"}]
    first = c.messages.create(model=route, max_tokens=100, tools=TOOLS, tool_choice={"type": "auto"}, messages=ask)
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    second = c.messages.create(model=route, max_tokens=100, tools=TOOLS, messages=[
        *ask,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ])  # fmt: skip
    assert second.stop_reason == "end_turn" and second.content[0].text == "The tool said: 18C and sunny"


def test_openai_target_sees_tool_calls_and_tool_messages(gw, upstream):
    c = client(gw)
    c.messages.create(model="tool-call", max_tokens=50, tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                          {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": [{"type": "text", "text": "-3C"}]},
                                     {"type": "text", "text": "and tomorrow?"}]},
    ], tool_choice={"type": "any", "disable_parallel_tool_use": True})  # fmt: skip
    body = upstream.requests[-1]["body"]
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                               "parameters": TOOLS[0]["input_schema"]}}]  # fmt: skip
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "-3C"},
        {"role": "user", "content": "and tomorrow?"},
    ]  # fmt: skip


@pytest.mark.parametrize("route", ["tool-call", "claude-tool"])
def test_streamed_tool_use(gw, route):
    ask = [{"role": "user", "content": "weather?"}]
    with client(gw).messages.stream(model=route, max_tokens=100, tools=TOOLS, messages=ask) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (call,) = [b for b in final.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"}) and call.id


def test_images_reach_the_target(gw, upstream):
    client(gw).messages.create(model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "what are these?"},
    ]}])  # fmt: skip
    assert upstream.requests[-1]["body"]["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "what are these?"},
    ]


def _post(gw, body, **headers):
    return httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY, **headers}, timeout=10)


@pytest.mark.parametrize(("body", "status", "kind", "says"), [
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error", "max_tokens"),
    ({**hello(), "model": "gpt-4o-mini", "thinking": {"type": "enabled", "budget_tokens": 1024}}, 400, "invalid_request_error", "thinking"),
    ({**hello(), "model": "gpt-4o-mini", "frobnicate": 1}, 400, "invalid_request_error", "frobnicate"),
    ({**hello(), "model": "gpt-4o-mini", "temperature": 1.5}, 400, "invalid_request_error", "temperature"),
    ({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error", "messages.0.role"),
    ({**hello(), "model": "no-such-model"}, 404, "not_found_error", "no-such-model"),
    ({**hello(), "model": "overloaded"}, 503, "overloaded_error", "503"),
    ({**hello(), "model": "claude-overloaded"}, 503, "overloaded_error", "Overloaded"),
    ({**hello(), "model": "broken-500"}, 500, "api_error", "500"),
    ({**hello(), "model": "hang"}, 504, "timeout_error", "time"),
])  # fmt: skip
def test_errors_in_anthropic_format(gw, body, status, kind, says):
    r = _post(gw, body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == kind and says in err["error"]["message"]
    assert err["request_id"] == r.headers["request-id"] == r.headers["x-llmgw-request-id"]


def test_sdk_raises_the_matching_exceptions(gw):
    c = client(gw)
    with pytest.raises(anthropic.NotFoundError) as nf:
        c.messages.create(model="no-such-model", **hello())
    assert nf.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.InternalServerError) as over:
        c.messages.create(model="claude-overloaded", **hello())
    assert over.value.status_code == 503 and over.value.body["error"]["type"] == "overloaded_error"


def test_invalid_json_and_oversized_body(gw):
    r = httpx.post(f"{gw.url}/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    big = hello(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 70_000}])
    r = _post(gw, big)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_fallback_is_the_same_decision(gw):
    r = client(gw).messages.with_raw_response.create(model="fallback", **hello())
    assert r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert r.parse().content[0].text == "Hello from the fake upstream: hello there"


def test_upstream_dying_mid_stream_ends_with_an_error_event(gw):
    with httpx.stream("POST", f"{gw.url}/v1/messages", json={**hello(), "model": "stream-cut", "stream": True}) as r:
        assert r.status_code == 200
        text = r.read().decode()
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names
    assert '"type":"api_error"' in text.split("event: error")[1]


def test_log_row_says_anthropic_and_keeps_the_openai_form(gw):
    r = client(gw).messages.with_raw_response.create(model="gpt-4o-mini", stream=False, **hello())
    rid = r.headers["x-llmgw-request-id"]
    row = wait_for_rows(gw, f"request_id = '{rid}'")[0]
    assert (row["api"], row["endpoint"], row["outcome"], row["target"]) == (
        "anthropic",
        "chat.completions",
        "ok",
        "local/gpt-4o-mini",
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (11, 7)
    assert json.loads(row["request_body"])["messages"] == [{"role": "user", "content": "hello there"}]
    with client(gw).messages.stream(model="claude", **hello()) as stream:
        stream.get_final_message()
        srid = stream.response.headers["x-llmgw-request-id"]
    srow = wait_for_rows(gw, f"request_id = '{srid}'")[0]
    assert srow["api"] == "anthropic" and srow["stream"] and srow["total_tokens"] == 34
    bad = _post(gw, {"model": "gpt-4o-mini", "messages": []})
    brow = wait_for_rows(gw, f"request_id = '{bad.headers['x-llmgw-request-id']}'")[0]
    assert (brow["api"], brow["status"], brow["outcome"]) == ("anthropic", 400, "client_error")
    chat = httpx.post(
        f"{gw.base_url}/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    )
    orow = wait_for_rows(gw, f"request_id = '{chat.headers['x-llmgw-request-id']}'")[0]
    assert orow["api"] == "openai"
    assert CLIENT_KEY not in str(wait_for_rows(gw, "api = 'anthropic'")) and CLIENT_KEY not in gw.server_log()
