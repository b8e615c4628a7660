"""The openai SDK, through llmgw, against an Anthropic target (a strict fake Messages API): what is
particular to Anthropic's wire format. What every kind must do (answers, usage, streams, tool
calls, fallback, refused parameters, keys) is in test_conformance.py."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import Gateway
from fake_anthropic import FakeAnthropic

KEY = "sk-ant-test-0123456789abcdefghij"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip


@pytest.fixture(scope="module")
def claude(tmp_path_factory):
    fake = FakeAnthropic(KEY).start()
    policy = {
        "providers": {
            "claude": {"kind": "anthropic", "base_url": fake.base_url, "api_key_env": "ANTHROPIC_TEST_KEY"},
        },
        "routes": {
            "claude": {"targets": [{"provider": "claude", "model": "claude-sonnet"}]},
            "claude-tool": {"targets": [{"provider": "claude", "model": "claude-tool"}]},
        },
        "log": {"flush_ms": 100},
    }
    gw = Gateway(tmp_path_factory.mktemp("claude"), policy, env={"ANTHROPIC_TEST_KEY": KEY})
    gw.fake = fake  # type: ignore[attr-defined]
    yield gw
    gw.terminate()
    fake.stop()
    assert fake.invalid == [], "the gateway sent requests the Messages API would reject"


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


def test_tools_and_tool_turns_on_the_wire(claude):
    c = oai(claude)
    first = c.chat.completions.create(model="claude-tool", tools=TOOLS, tool_choice="auto",
                                      messages=[{"role": "user", "content": "weather in Paris?"}])  # fmt: skip
    call = first.choices[0].message.tool_calls[0]
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
    assert turns[1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]


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
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
