"""OpenAI answers and chunk streams → Anthropic messages and events (anthropic_response + _stream)."""

from __future__ import annotations

import json

import orjson
import pytest

from llmgw_kernel.proxy.anthropic_response import anthropic_error, anthropic_usage, stop_reason, to_anthropic_message
from llmgw_kernel.proxy.anthropic_stream import AnthropicEvents

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
USAGE = {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34,
         "prompt_tokens_details": {"cached_tokens": 4, "cache_creation_tokens": 0}}  # fmt: skip


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
    ("function_call", "tool_use"), ("content_filter", "refusal"), (None, "end_turn"), ("weird", "end_turn"),
])  # fmt: skip
def test_stop_reasons(finish, stop):
    assert stop_reason(finish) == stop


def test_usage_separates_cache_reads_from_input():
    assert anthropic_usage(USAGE) == {"input_tokens": 21, "output_tokens": 9,
                                      "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}  # fmt: skip
    assert anthropic_usage(None)["input_tokens"] == 0


def test_message_with_text_and_tool_calls():
    msg = to_anthropic_message({
        "id": "chatcmpl-9", "model": "gpt-x", "usage": USAGE,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me see.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                           {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]}}],
    })  # fmt: skip
    assert msg["id"] == "msg_chatcmpl-9" and msg["type"] == "message" and msg["stop_reason"] == "tool_use"
    assert msg["content"] == [
        {"type": "text", "text": "Let me see."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {"_raw": "not json"}},
    ]


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (422, "invalid_request_error"),
    (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"), (503, "overloaded_error"),
    (504, "timeout_error"), (529, "overloaded_error"),
])  # fmt: skip
def test_error_types_by_status(status, kind):
    body = orjson.dumps({"error": {"message": "boom", "type": "x", "param": None, "code": None}})
    assert anthropic_error(status, body, "req_1") == {
        "type": "error", "error": {"type": kind, "message": "boom"}, "request_id": "req_1"}  # fmt: skip


def frames(*chunks) -> bytes:
    return b"".join(b"data: " + (c if isinstance(c, bytes) else orjson.dumps({**HEAD, **c})) + b"\n\n" for c in chunks)


def choice(delta=None, finish=None):
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def parse(sse: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in sse.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[6:])
        assert payload["type"] == name[7:]
        events.append((name[7:], payload))
    return events


STREAM = frames(
    choice({"role": "assistant", "content": ""}),
    choice({"content": "Hel"}), choice({"content": "lo"}),
    choice({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
    choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
    choice({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
    choice({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
    choice(finish="tool_calls"),
    {"choices": [], "usage": USAGE},
    b"[DONE]",
)  # fmt: skip


@pytest.mark.parametrize("piece", [len(STREAM), 1, 7, 64])
def test_stream_translation_in_any_slicing(piece):
    tr = AnthropicEvents()
    out = b"".join(tr.feed(STREAM[i : i + piece]) for i in range(0, len(STREAM), piece)) + tr.close()
    events = parse(out)
    assert [e for e, _ in events] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    start = events[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-1" and start["model"] == "gpt-x" and start["content"] == []
    assert events[5][1] == {"type": "content_block_start", "index": 1,
                            "content_block": {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}}  # fmt: skip
    args = "".join(p["delta"]["partial_json"] for e, p in events if p.get("index") == 1 and e == "content_block_delta")
    assert json.loads(args) == {"a": 1}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 9
    assert delta["usage"]["input_tokens"] == 21 and delta["usage"]["cache_read_input_tokens"] == 4


def test_stream_without_done_is_finished_on_close():
    tr = AnthropicEvents()
    out = tr.feed(frames(choice({"content": "x"}), choice(finish="length"))) + tr.close()
    events = parse(out)
    assert [e for e, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert tr.close() == b""


def test_error_mid_stream_ends_the_stream():
    tr = AnthropicEvents()
    err = orjson.dumps({"error": {"message": "target x: broke", "type": "upstream_error", "code": "upstream_529"}})
    out = tr.feed(frames(choice({"content": "x"}), err, b"[DONE]")) + tr.close()
    events = parse(out)
    assert [e for e, _ in events] == ["message_start", "content_block_start", "content_block_delta",
                                      "content_block_stop", "error"]  # fmt: skip
    assert events[-1][1]["error"] == {"type": "overloaded_error", "message": "target x: broke"}


def test_empty_stream_still_makes_a_valid_message():
    tr = AnthropicEvents()
    assert [e for e, _ in parse(tr.feed(frames(b"[DONE]")))] == ["message_start", "message_delta", "message_stop"]
