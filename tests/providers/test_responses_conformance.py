"""The Responses API (``POST /v1/responses``) against every provider kind: the official openai
SDK's ``responses.create`` / ``responses.stream`` through a real `llmgw serve`, in front of each
kind's strict fake (the stacks of ``test_conformance.py``: a fake that records and validates
every request its API would receive). Plain, streamed, tools both ways (streamed too),
structured output, fallback; the log row of each request carries the usual columns. The demo
kind runs the same scenarios in ``tests/proxy/test_responses.py``.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest
import test_conformance as conformance
from test_conformance import BACKUP, FAILURES, STREAM, Stack

# the conformance suite's fixtures: one stack per kind, a kind's stack checked for invalid requests after each test
stacks, kind, stack = conformance.stacks, conformance.kind, conformance.stack

FN_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}  # fmt: skip
ASK = "weather in Paris?"
#: the kinds whose attempts pass the Responses body through to the provider's own /responses
PASSTHROUGH = ("openai", "azure")


def events(stack: Stack, **kw: Any) -> list[Any]:
    return list(stack.client().responses.create(stream=True, **kw))


def of_type(evs: list[Any], kind_: str) -> list[Any]:
    return [e for e in evs if e.type == kind_]


def usage_of(usage: Any) -> tuple[int, int, int]:
    return usage.input_tokens, usage.output_tokens, usage.total_tokens


def test_plain_answer_usage_and_log_row(stack):
    raw = stack.client().responses.with_raw_response.create(model="plain", input="hello there", instructions="Brief.")
    r = raw.parse()
    rid = raw.headers["x-llmgw-request-id"]
    assert r.object == "response" and r.status == "completed"
    if stack.kind.name in PASSTHROUGH:  # the upstream's own response, its id included
        assert r.id == "resp_fake_1" and stack.fake.requests[-1]["body"]["input"] == "hello there"
    else:
        assert r.id == "resp_" + rid.removeprefix("req_")
    assert r.output_text.endswith(stack.kind.echo + "hello there")
    assert [(o.type, o.role, o.status) for o in r.output] == [("message", "assistant", "completed")]
    assert r.instructions == "Brief." and r.model
    row = stack.row(rid)
    assert (row["api"], row["endpoint"], row["route"], row["status"], row["outcome"]) == (
        "responses", "chat.completions", "plain", 200, "ok")  # fmt: skip
    assert row["target"] == f"{stack.kind.name}/{stack.kind.plain}" and row["provider"] == stack.kind.name
    assert usage_of(r.usage) == (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"])
    logged = json.loads(row["request_body"])  # the chat form: hashed, cached and replayed like chat
    messages = [{"role": "system", "content": "Brief."}, {"role": "user", "content": "hello there"}]
    assert logged["messages"] == messages
    chat = stack.client().chat.completions.with_raw_response.create(model="plain", messages=messages)
    twin = stack.row(chat.headers["x-llmgw-request-id"])
    for column in ("request_hash", "route", "target", "prompt_tokens", "completion_tokens", "cache"):
        assert row[column] == twin[column], column
    cached = r.usage.input_tokens_details.cached_tokens
    assert row["cached_tokens"] == (cached or None if stack.kind.name in PASSTHROUGH else twin["cached_tokens"])
    if stack.kind.name in PASSTHROUGH and cached:  # cached tokens are cheaper (openai's fake reports 3)
        assert 0 < row["cost_usd"] < twin["cost_usd"]
    else:  # the same tokens at the same price
        assert row["cost_usd"] == twin["cost_usd"]


def test_streamed_answer_is_the_documented_event_sequence(stack):
    evs = events(stack, model="plain", input="stream please")
    types = [e.type for e in evs]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]  # fmt: skip
    assert [e.sequence_number for e in evs] == list(range(len(evs)))
    text = "".join(e.delta for e in of_type(evs, "response.output_text.delta"))
    assert text == stack.kind.echo + "stream please" == of_type(evs, "response.output_text.done")[0].text
    done = evs[-1].response
    assert done.output_text == text and done.status == "completed" and usage_of(done.usage) == stack.kind.usage
    assert {e.item_id for e in of_type(evs, "response.output_text.delta")} == {done.output[0].id}


def test_stream_helper_accumulates_the_final_response(stack):
    with stack.client().responses.stream(model="plain", input="helper") as s:
        for _ in s:
            pass
        final = s.get_final_response()
    assert final.output_text == stack.kind.echo + "helper" and usage_of(final.usage) == stack.kind.usage


@pytest.mark.parametrize("stream", STREAM)
def test_the_model_calls_a_tool(stack, stream):
    kw = {"model": "tool", "input": ASK, "tools": [FN_TOOL], "tool_choice": "auto"}
    if stream:
        evs = events(stack, **kw)
        args = "".join(e.delta for e in of_type(evs, "response.function_call_arguments.delta"))
        assert json.loads(args) == {"city": "Paris"}
        assert json.loads(of_type(evs, "response.function_call_arguments.done")[0].arguments) == {"city": "Paris"}
        call = evs[-1].response.output[-1]
    else:
        r = stack.client().responses.create(**kw)
        assert r.output_text == ""
        call = r.output[-1]
    assert (call.type, call.name, call.status) == ("function_call", "get_weather", "completed")
    assert call.call_id.startswith(stack.kind.tool_id) and json.loads(call.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("stream", STREAM)
def test_the_tool_result_goes_back_and_the_model_uses_it(stack, stream):
    c = stack.client()
    asked = c.responses.create(model="tool", input=ASK, tools=[FN_TOOL])
    call = asked.output[-1]
    items = [
        {"role": "user", "content": ASK},
        *[o.model_dump(exclude_none=True) for o in asked.output],  # what the SDK's users send back
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"},
    ]
    if stream:
        evs = events(stack, model="tool", input=items, tools=[FN_TOOL])
        text = evs[-1].response.output_text
    else:
        text = c.responses.create(model="tool", input=items, tools=[FN_TOOL]).output_text
    assert text == "The tool said: 18C and sunny"


def test_structured_output_reaches_the_provider(stack):
    before = len(stack.fake.requests)
    r = stack.client().responses.create(
        model="plain", input=ASK, text={"format": {"type": "json_schema", "name": "weather", "schema": SCHEMA,
                                                   "strict": True}},
    )  # fmt: skip
    assert r.status == "completed" and r.text.format.type == "json_schema"
    (sent,) = [req["body"] for req in stack.fake.requests[before:]]
    if stack.kind.name in PASSTHROUGH:  # the Responses body, as is
        expected = {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}
        assert sent["text"] == {"format": expected}
    else:  # the native translation of response_format
        assert "city" in json.dumps(sent.get("tools") or sent.get("generationConfig"))
    assert json.loads(r.output_text) == {"city": "Paris"}  # every fake answers the schema with this


def test_the_sdk_parse_helper_reads_structured_output(stack):
    class Weather(pydantic.BaseModel):
        city: str

    parsed = stack.client().responses.parse(model="plain", input=ASK, text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris")


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("route", "status"), FAILURES)
def test_a_busy_or_down_provider_falls_back(stack, route, status, stream):
    raw = stack.client().responses.with_raw_response.create(model=f"{route}-then-backup", input=ASK, stream=stream)
    assert raw.headers["x-llmgw-target"] == BACKUP
    parsed = raw.parse()
    answer = list(parsed)[-1].response.output_text if stream else parsed.output_text
    assert answer == "Hello from the fake upstream: " + ASK
    row = stack.row(raw.headers["x-llmgw-request-id"])
    assert [a["status"] for a in row["attempts"]] == [status, 200] and row["api"] == "responses"


@pytest.mark.parametrize("stream", STREAM)
def test_a_provider_failure_keeps_its_status_in_openai_format(stack, stream):
    with pytest.raises(openai.APIStatusError) as exc:
        answer = stack.client().responses.create(model="down", input=ASK, stream=stream)
        if stream:
            list(answer)
    assert exc.value.status_code == 503 and exc.value.body["code"] == "upstream_503"
