"""The chat-chunk → Responses-event translator (:class:`ResponsesEvents`) on its own: any
slicing of the input gives the same events; text then tool calls; a stream cut mid-way; a
stream without ``[DONE]``; a truncated answer; and every event parses as the openai SDK's own
``ResponseStreamEvent`` type."""

from __future__ import annotations

import json

import orjson
import pytest
from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from llmgw_kernel.proxy.responses_stream import ResponsesEvents

RID = "resp_0123"


def sse(*chunks: dict | str) -> bytes:
    return b"".join(b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n" for c in chunks)


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    out: dict = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
TEXT_AND_TOOL = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_9", "function": {"name": "f", "arguments": '{"a"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
    chunk(finish="tool_calls"),
    chunk(usage=USAGE),
    "[DONE]",
)


def translate(data: bytes, step: int | None = None) -> list[dict]:
    ev = ResponsesEvents(RID, {"instructions": "x"})
    out = b""
    if step is None:
        out = ev.feed(data)
    else:
        for i in range(0, len(data), step):
            out += ev.feed(data[i : i + step])
    out += ev.close()
    frames = [f for f in out.split(b"\n\n") if f]
    events = []
    for frame in frames:
        name, data_line = frame.split(b"\n")
        event = json.loads(data_line.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        events.append(event)
    return events


@pytest.mark.parametrize("step", [1, 7, 64])
def test_any_slicing_gives_the_same_events(step):
    assert translate(TEXT_AND_TOOL, step) == translate(TEXT_AND_TOOL)


def test_text_then_a_tool_call():
    events = translate(TEXT_AND_TOOL)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = events[-1]["response"]
    assert [o["type"] for o in done["output"]] == ["message", "function_call"]
    assert done["output"][0]["content"][0]["text"] == "Hello"
    assert done["output"][1]["arguments"] == '{"a": 1}' and done["output"][1]["call_id"] == "call_9"
    assert '"_text":' not in json.dumps(events)  # no bookkeeping leaks
    assert done["usage"]["input_tokens"] == 5 and done["usage"]["total_tokens"] == 8
    assert events[2]["output_index"] == 0 and events[9]["output_index"] == 1


def test_every_event_is_a_type_the_sdk_knows():
    adapter = TypeAdapter(ResponseStreamEvent)
    for event in translate(TEXT_AND_TOOL):
        adapter.validate_python(event)  # strict: every required field present and typed
        assert type(construct_type(type_=ResponseStreamEvent, value=event)).__name__ != "dict"


def test_text_after_a_tool_call_is_a_new_message_item():
    events = translate(sse(
        chunk({"content": "Let me look."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}),
        chunk({"content": "Done."}),
        chunk(finish="stop"),
        "[DONE]",
    ))  # fmt: skip
    output = events[-1]["response"]["output"]
    assert [o["type"] for o in output] == ["message", "function_call", "message"]
    assert [o["content"][0]["text"] for o in output if o["type"] == "message"] == ["Let me look.", "Done."]
    assert len({o["id"] for o in output}) == 3
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [(d["output_index"], d["item_id"]) for d in deltas] == [(0, output[0]["id"]), (2, output[2]["id"])]


def test_a_cut_stream_ends_with_error_and_failed():
    cut = sse(chunk({"content": "Hi"}), {"error": {"message": "upstream died", "code": "upstream_timeout"}})
    events = translate(cut)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_timeout" and events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"] == {"code": "upstream_timeout", "message": "upstream died"}
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "output_text", "text": "Hi", "annotations": [],
                                                             "logprobs": []}]  # fmt: skip
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_no_done_still_completes_and_length_is_incomplete():
    events = translate(sse(chunk({"content": "abc"}), chunk(finish="length")))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "abc"


def test_an_empty_stream_still_opens_and_closes():
    events = translate(b"")
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
