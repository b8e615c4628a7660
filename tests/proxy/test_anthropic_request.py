"""Anthropic Messages request → OpenAI chat request: a table that reads like the spec."""

from __future__ import annotations

import pytest

from llmgw_kernel.proxy.anthropic_request import FIELDS, to_openai_request
from llmgw_kernel.proxy.errors import GatewayError

USER = [{"role": "user", "content": "hi"}]


def req(**kw):
    return {"model": "m", "max_tokens": 10, "messages": USER, **kw}


@pytest.mark.parametrize(("anthropic", "openai"), [
    ({}, {}),
    ({"stop_sequences": ["X"], "temperature": 0.5, "top_p": 0.9}, {"stop": ["X"], "temperature": 0.5, "top_p": 0.9}),
    ({"top_k": 40, "service_tier": "auto", "cache_control": {"type": "ephemeral"}, "speed": "fast"}, {}),
    ({"metadata": {"user_id": "u1"}}, {"user": "u1"}),
    ({"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
    ({"stream": False}, {}),
    ({"thinking": {"type": "disabled"}}, {}),
    ({"output_config": {"effort": "low"}}, {"reasoning_effort": "low"}),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}}}),
    ({"tool_choice": {"type": "auto"}}, {}),  # no tools: nothing to choose (OpenAI would refuse it)
])  # fmt: skip
def test_top_level_fields(anthropic, openai):
    out = to_openai_request(req(**anthropic))
    assert out == {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **openai}


@pytest.mark.parametrize(("system", "messages"), [
    ("Be brief.", [{"role": "system", "content": "Be brief."}]),
    ([{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}],
     [{"role": "system", "content": "A\n\nB"}]),
    ("", []),
])  # fmt: skip
def test_system(system, messages):
    assert to_openai_request(req(system=system))["messages"] == [*messages, {"role": "user", "content": "hi"}]


TOOL = {"name": "f", "description": "d", "input_schema": {"type": "object"}}


@pytest.mark.parametrize(("choice", "openai"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "f"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
    ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
])  # fmt: skip
def test_tools_and_tool_choice(choice, openai):
    out = to_openai_request(req(tools=[{**TOOL, "strict": True}], tool_choice=choice))
    assert out["tools"] == [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}}]  # fmt: skip
    assert {k: out[k] for k in openai} == openai


def test_conversation_with_tools_images_and_thinking():
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "tw"}, {"type": "text", "text": "o"}], "is_error": True},
            {"type": "text", "text": "so?"},
        ]},
        {"role": "assistant", "content": "Prefilled"},
    ]  # fmt: skip
    assert to_openai_request(req(messages=messages))["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
            {"id": "t2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: two"},
        {"role": "user", "content": "so?"},
        {"role": "assistant", "content": "Prefilled"},
    ]  # fmt: skip


def test_assistant_turn_with_only_tool_calls_has_null_content():
    msg = to_openai_request(req(messages=[*USER, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]))["messages"][1]  # fmt: skip
    assert msg["content"] is None and msg["tool_calls"][0]["id"] == "t"


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m", "messages": USER}, "max_tokens"),
    (req(max_tokens=0), "max_tokens"),
    (req(max_tokens="10"), "max_tokens"),
    (req(temperature=1.2), "temperature"),
    (req(top_p=True), "top_p"),
    (req(stop_sequences=[1]), "stop_sequences.0"),
    (req(unknown_field=1), "unknown_field"),
    (req(thinking={"type": "enabled", "budget_tokens": 2000}), "thinking"),
    (req(thinking={"type": "adaptive"}), "thinking"),
    (req(inference_geo="eu"), "inference_geo"),
    (req(mcp_servers=[{}]), "mcp_servers"),
    (req(output_config={"effort": "max"}), "output_config.effort"),
    (req(output_config={"format": {"type": "text"}}), "output_config.format"),
    (req(metadata={"user_id": "u", "team": "x"}), "metadata.team"),
    (req(messages=[]), "messages"),
    (req(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
    (req(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (req(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]), "messages.0.content.0.type"),
    (req(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
     "messages.0.content.0.source"),
    (req(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                   "content": [{"type": "image", "source": {}}]}]}]),
     "messages.0.content.0.content.0"),
    (req(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
    (req(tools=[{"name": "f"}]), "tools.0.input_schema"),
    (req(tool_choice={"type": "sometimes"}), "tool_choice"),
    (req(system=[{"type": "image"}]), "system.0"),
    ([1, 2], None),
])  # fmt: skip
def test_refusals_name_the_field(body, param):
    with pytest.raises(GatewayError) as exc:
        to_openai_request(body)
    assert exc.value.status == 400 and exc.value.param == param
    if param:
        assert exc.value.message.startswith(param)


def test_every_field_has_a_documented_action():
    assert all(p.action in ("map", "build", "drop", "refuse") for p in FIELDS.values())
    assert all(p.note for p in FIELDS.values() if p.action in ("drop", "refuse", "build"))


def test_the_docs_list_every_field():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "anthropic-inbound.md").read_text()
    missing = [name for name in FIELDS if f"`{name}" not in doc]
    assert not missing, f"docs/anthropic-inbound.md does not mention {missing}"
