"""The openai SDK, through llmgw, against an Anthropic target (a strict fake Messages API)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import openai
import pytest
from conftest import Gateway, wait_for_rows

sys.path.insert(0, str(Path(__file__).parent.parent))
from fake_anthropic import FakeAnthropic  # noqa: E402

KEY = "sk-ant-test-0123456789abcdefghij"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip


@pytest.fixture(scope="module")
def claude(tmp_path_factory, upstream):
    fake = FakeAnthropic(KEY).start()
    policy = {
        "providers": {
            "claude": {"kind": "anthropic", "base_url": fake.base_url, "api_key_env": "ANTHROPIC_TEST_KEY"},
            "backup": {"kind": "openai", "base_url": upstream.base_url, "api_key_env": "LOCAL_API_KEY"},
        },
        "routes": {
            "claude": {"targets": [{"provider": "claude", "model": "claude-sonnet"}]},
            "claude-tool": {"targets": [{"provider": "claude", "model": "claude-tool"}]},
            "overloaded": {"targets": [{"provider": "claude", "model": "claude-overloaded"}, {"provider": "backup", "model": "gpt-4o"}]},
            "overloaded-only": {"targets": [{"provider": "claude", "model": "claude-overloaded"}]},
            "claude-then-openai": {"targets": [{"provider": "claude", "model": "claude-sonnet"}, {"provider": "backup", "model": "gpt-4o"}]},
        },
        "log": {"flush_ms": 100},
    }
    gw = Gateway(tmp_path_factory.mktemp("claude"), policy, env={"ANTHROPIC_TEST_KEY": KEY})
    gw.fake = fake  # type: ignore[attr-defined]
    yield gw
    gw.terminate()
    fake.stop()


def oai(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def test_plain_answer_usage_and_wire_format(claude):
    r = oai(claude).chat.completions.create(
        model="claude", max_tokens=100, temperature=0.2, stop="END", user="u-7",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
    )  # fmt: skip
    assert r.choices[0].message.content == "(with system) Claude heard: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (25, 9, 34)
    assert r.usage.prompt_tokens_details.cached_tokens == 4
    sent = claude.fake.requests[-1]
    assert sent["headers"]["x-api-key"] == KEY and sent["headers"]["anthropic-version"]
    assert sent["body"]["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["body"]["stop_sequences"] == ["END"] and sent["body"]["metadata"] == {"user_id": "u-7"}
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]


def test_max_tokens_is_defaulted(claude):
    oai(claude).chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert claude.fake.requests[-1]["body"]["max_tokens"] == 4096


def test_stream_with_usage(claude):
    chunks = list(oai(claude).chat.completions.create(
        model="claude", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream please"}],
    ))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Claude heard: stream please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 34


def test_stream_usage_is_logged_even_when_not_requested(claude):
    resp = oai(claude).chat.completions.with_raw_response.create(
        model="claude", stream=True, messages=[{"role": "user", "content": "quiet"}]
    )
    chunks = list(resp.parse())
    assert all(c.usage is None for c in chunks)
    row = wait_for_rows(claude, f"request_id = '{resp.headers['x-llmgw-request-id']}'")[0]
    assert row["total_tokens"] == 34 and row["outcome"] == "ok"


def test_tool_call_round_trip(claude):
    c = oai(claude)
    first = c.chat.completions.create(model="claude-tool", tools=TOOLS, tool_choice="auto",
                                      messages=[{"role": "user", "content": "weather in Paris?"}])  # fmt: skip
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("toolu_01", "get_weather", {"city": "Paris"})
    sent = claude.fake.requests[-1]["body"]
    assert sent["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    assert sent["tool_choice"] == {"type": "auto"}
    second = c.chat.completions.create(model="claude-tool", tools=TOOLS, messages=[
        {"role": "user", "content": "weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ])  # fmt: skip
    assert second.choices[0].message.content == "The tool said: 18C and sunny"
    turns = claude.fake.requests[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][-1]["type"] == "tool_use" and turns[2]["content"][0]["type"] == "tool_result"


def test_streamed_tool_call_arguments(claude):
    chunks = list(oai(claude).chat.completions.create(
        model="claude-tool", tools=TOOLS, stream=True, messages=[{"role": "user", "content": "weather?"}]
    ))  # fmt: skip
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "toolu_01" and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_schema_response_format(claude):
    r = oai(claude).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "weather"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    )  # fmt: skip
    assert json.loads(r.choices[0].message.content) == {"city": "Paris"}
    assert r.choices[0].finish_reason == "stop"


def test_image_parts(claude):
    oai(claude).chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]}])  # fmt: skip
    blocks = claude.fake.requests[-1]["body"]["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}


def test_overloaded_falls_back_and_alone_is_503(claude):
    r = oai(claude).chat.completions.with_raw_response.create(model="overloaded", messages=[{"role": "user", "content": "x"}])
    assert r.headers["x-llmgw-target"] == "backup/gpt-4o"
    with pytest.raises(openai.InternalServerError) as exc:
        oai(claude).chat.completions.create(model="overloaded-only", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503 and "Overloaded" in str(exc.value)


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"logprobs": True}, "logprobs"),
    ({"n": 2}, "n"),
    ({"temperature": 1.5}, "temperature"),
    ({"some_new_param": 1}, "some_new_param"),
])  # fmt: skip
def test_refused_parameters_name_themselves(claude, kwargs, param):
    with pytest.raises(openai.BadRequestError) as exc:
        oai(claude).chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}], extra_body=kwargs)
    assert exc.value.body["param"] == param and exc.value.body["code"] == "unsupported_parameter"


def test_unsupported_parameter_falls_back_to_a_target_that_has_it(claude):
    r = oai(claude).chat.completions.with_raw_response.create(
        model="claude-then-openai", logprobs=True, messages=[{"role": "user", "content": "x"}]
    )
    assert r.headers["x-llmgw-target"] == "backup/gpt-4o"


def test_key_never_leaks(claude):
    with pytest.raises(openai.BadRequestError):
        oai(claude).chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}], extra_body={"logprobs": True})
    rows = wait_for_rows(claude, "true", n=1)
    assert KEY not in str(rows) and KEY not in claude.server_log()
