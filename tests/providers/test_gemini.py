"""The openai SDK, through llmgw, against a Gemini target (a strict fake Gemini API): what is
particular to Gemini (its request shape, schemas, thought signatures, safety blocks, in-stream
errors, embeddings). What every kind must do (answers, usage, streams, tool calls, fallback,
refused parameters, keys) is in test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import httpx
import openai
import pytest
from conftest import Gateway, wait_for_rows
from fake_gemini import SIGNATURE, FakeGemini

KEY = "AIza-gemini-test-0123456789abcdefghij"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "strict": True,
          "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
                         "properties": {"city": {"type": "string", "format": "hostname"}}, "required": ["city"]}}}]  # fmt: skip
USER = [{"role": "user", "content": "weather in Paris?"}]


@pytest.fixture(scope="module")
def gem(tmp_path_factory, upstream):
    fake = FakeGemini(KEY).start()
    policy = {
        "providers": {
            "gemini": {"kind": "gemini", "base_url": fake.base_url, "api_key_env": "GEMINI_TEST_KEY"},
            "backup": {"kind": "openai", "base_url": upstream.base_url, "api_key_env": "LOCAL_API_KEY"},
        },
        "routes": {
            **{m: {"targets": [{"provider": "gemini", "model": m}]} for m in (
                "gemini-flash", "gemini-tool", "gemini-3-tool", "gemini-safety", "gemini-blocked", "gemini-max",
                "gemini-thinking", "text-embedding-004")},
            "stream-error-0": {"targets": [{"provider": "gemini", "model": "gemini-stream-error-0"}, {"provider": "backup", "model": "gpt-4o"}]},
            "stream-error-2": {"targets": [{"provider": "gemini", "model": "gemini-stream-error-2"}, {"provider": "backup", "model": "gpt-4o"}]},
        },
        "log": {"flush_ms": 100},
    }  # fmt: skip
    gw = Gateway(tmp_path_factory.mktemp("gemini"), policy, env={"GEMINI_TEST_KEY": KEY})
    gw.fake = fake  # type: ignore[attr-defined]
    yield gw
    gw.terminate()
    fake.stop()
    assert fake.invalid == [], "the gateway sent requests the Gemini API would reject"
    for req in fake.requests:
        assert "key" not in req["query"] and KEY not in req["path"], "the key travelled in the URL"


def oai(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def sent(gw) -> dict:
    return gw.fake.requests[-1]


def test_plain_answer_usage_and_wire_format(gem):
    r = oai(gem).chat.completions.create(
        model="gemini-flash", max_tokens=100, temperature=1.5, top_p=0.9, stop="END", seed=7, user="u-7",
        presence_penalty=0.5, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
    )  # fmt: skip
    assert r.choices[0].message.content == "(with system) Gemini heard: hello there"
    assert r.choices[0].finish_reason == "stop" and r.model == "gemini-flash-001"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 12, 24)
    assert r.usage.prompt_tokens_details.cached_tokens == 3
    assert r.usage.completion_tokens_details.reasoning_tokens == 5
    req = sent(gem)
    assert req["path"] == "/v1beta/models/gemini-flash:generateContent" and req["query"] == {}
    assert req["headers"]["x-goog-api-key"] == KEY and "Authorization" not in req["headers"]
    assert req["body"] == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
        "generationConfig": {"maxOutputTokens": 100, "temperature": 1.5, "topP": 0.9, "stopSequences": ["END"],
                             "seed": 7, "presencePenalty": 0.5},
    }  # fmt: skip


def test_multi_turn_roles_and_reasoning_effort(gem):
    oai(gem).chat.completions.create(model="gemini-flash", reasoning_effort="low", max_completion_tokens=50, messages=[
        {"role": "developer", "content": "Be kind."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"},
    ])  # fmt: skip
    body = sent(gem)["body"]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024}, "maxOutputTokens": 50}


def test_streams_ask_for_sse_and_count_thoughts_as_reasoning_tokens(gem):
    chunks = list(oai(gem).chat.completions.create(
        model="gemini-flash", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream please"}],
    ))  # fmt: skip
    assert sent(gem)["path"] == "/v1beta/models/gemini-flash:streamGenerateContent" and sent(gem)["query"] == {
        "alt": "sse"
    }
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 5
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 3


def test_tools_and_tool_turns_on_the_wire_and_stable_call_ids(gem):
    c = oai(gem)
    first = c.chat.completions.create(model="gemini-tool", tools=TOOLS, tool_choice="auto", messages=USER)
    call = first.choices[0].message.tool_calls[0]
    again = c.chat.completions.create(model="gemini-tool", tools=TOOLS, tool_choice="auto", messages=USER)
    assert again.choices[0].message.tool_calls[0].id == call.id  # derived from the response: stable
    body = sent(gem)["body"]
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]  # fmt: skip
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    second = c.chat.completions.create(model="gemini-tool", tools=TOOLS, messages=[
        *USER, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ])  # fmt: skip
    assert second.choices[0].message.content == "The tool said: 18C and sunny"
    turns = sent(gem)["body"]["contents"]
    assert [t["role"] for t in turns] == ["user", "model", "user"]
    assert turns[1]["parts"][0]["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
    assert turns[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"output": "18C and sunny"}}}]


def test_parallel_tool_results_share_one_turn(gem):
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
             for i, c in enumerate(["Paris", "Rome"])]  # fmt: skip
    r = oai(gem).chat.completions.create(model="gemini-tool", tools=TOOLS, messages=[
        *USER, {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c0", "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": "c1", "content": "21C"},
    ])  # fmt: skip
    assert r.choices[0].message.content.startswith("The tool said:")
    turns = sent(gem)["body"]["contents"]
    assert [p["functionResponse"]["response"] for p in turns[2]["parts"]] == [{"temp": 18}, {"output": "21C"}]


def test_gemini_3_thought_signatures_round_trip(gem):
    c = oai(gem)
    first = c.chat.completions.create(model="gemini-3-tool", tools=TOOLS, messages=USER)
    call = first.choices[0].message.tool_calls[0]
    assert call.model_extra["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    result = {"role": "tool", "tool_call_id": call.id, "content": "18C"}
    c.chat.completions.create(model="gemini-3-tool", tools=TOOLS,
                              messages=[*USER, first.choices[0].message.model_dump(exclude_none=True), result])  # fmt: skip
    assert sent(gem)["body"]["contents"][1]["parts"][0]["thoughtSignature"] == SIGNATURE
    # a client that rebuilds the assistant message (or a history from another provider) has no signature
    bare = {
        "role": "assistant",
        "tool_calls": [{"id": call.id, "type": "function", "function": call.function.model_dump()}],
    }
    r = c.chat.completions.create(model="gemini-3-tool", tools=TOOLS, messages=[*USER, bare, result])
    assert r.choices[0].message.content == "The tool said: 18C"
    assert sent(gem)["body"]["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"


def test_streamed_tool_call_arrives_whole(gem):
    chunks = list(oai(gem).chat.completions.create(model="gemini-tool", tools=TOOLS, stream=True, messages=USER))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].id.startswith("call_")
    assert (deltas[0].function.name, json.loads(deltas[0].function.arguments)) == ("get_weather", {"city": "Paris"})
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_forced_function(gem):
    r = oai(gem).chat.completions.create(model="gemini-flash", tools=TOOLS, messages=USER,
                                         tool_choice={"type": "function", "function": {"name": "get_weather"}})  # fmt: skip
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert sent(gem)["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "content"), [("gemini-safety", "Partial"), ("gemini-blocked", "")])
def test_safety_blocks_finish_with_content_filter(gem, model, content, stream):
    kw = {"model": model, "messages": [{"role": "user", "content": "something bad"}]}
    if not stream:
        r = oai(gem).chat.completions.create(**kw)
        assert (r.choices[0].finish_reason, r.choices[0].message.content) == ("content_filter", content)
        assert r.usage.prompt_tokens == 12
        return
    chunks = list(oai(gem).chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]
    assert chunks[-1].usage.prompt_tokens == 12


def test_max_tokens_thoughts_and_candidates(gem):
    c = oai(gem)
    assert c.chat.completions.create(model="gemini-max", messages=USER).choices[0].finish_reason == "length"
    assert (
        c.chat.completions.create(model="gemini-thinking", messages=USER).choices[0].message.content
        == "Gemini heard: weather in Paris?"
    )
    r = c.chat.completions.create(model="gemini-flash", n=2, messages=USER)
    assert [ch.message.content for ch in r.choices] == [
        "Gemini heard: weather in Paris?",
        "Gemini heard: weather in Paris? #1",
    ]
    assert sent(gem)["body"]["generationConfig"] == {"candidateCount": 2}


def test_json_schema_is_reduced_to_gemini_subset(gem):
    schema = {"type": "object", "additionalProperties": False, "$defs": {"Unit": {"type": "string", "enum": ["C", "F"]}},
              "properties": {"city": {"type": "string"}, "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}]}},
              "required": ["city"]}  # fmt: skip
    r = oai(gem).chat.completions.create(model="gemini-flash", messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": True}})  # fmt: skip
    assert json.loads(r.choices[0].message.content) == {"city": "Paris"}
    assert sent(gem)["body"]["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": {
        "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"], "nullable": True}},
        "required": ["city"]}}  # fmt: skip
    oai(gem).chat.completions.create(model="gemini-flash", messages=USER, response_format={"type": "json_object"})
    assert sent(gem)["body"]["generationConfig"] == {"responseMimeType": "application/json"}


def test_image_parts(gem):
    oai(gem).chat.completions.create(model="gemini-flash", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
    ]}])  # fmt: skip
    parts = sent(gem)["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert parts[2] == {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}}


def test_an_error_before_the_first_payload_falls_back_and_after_it_ends_the_stream(gem):
    with httpx.stream("POST", f"{gem.base_url}/chat/completions",
                      json={"model": "stream-error-0", "messages": USER, "stream": True}) as r:  # fmt: skip
        assert r.headers["x-llmgw-target"] == "backup/gpt-4o" and [x for x in r.iter_lines() if x][-1] == "data: [DONE]"
    with httpx.stream("POST", f"{gem.base_url}/chat/completions",
                      json={"model": "stream-error-2", "messages": USER, "stream": True}) as r:  # fmt: skip
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert r.headers["x-llmgw-target"] == "gemini/gemini-stream-error-2"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "Gemini heard: "
    assert events[-1]["error"]["code"] == "upstream_503" and "UNAVAILABLE" in events[-1]["error"]["message"]


def test_embeddings(gem):
    c = oai(gem)
    r = c.embeddings.create(model="text-embedding-004", input=["a", "b"], dimensions=4)  # the SDK asks for base64
    assert [len(d.embedding) for d in r.data] == [4, 4] and [d.index for d in r.data] == [0, 1]
    req = sent(gem)
    assert req["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert req["body"]["requests"][0] == {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]},
                                          "outputDimensionality": 4}  # fmt: skip
    raw = c.embeddings.with_raw_response.create(model="text-embedding-004", input="a", encoding_format="float")
    floats = raw.parse().data[0].embedding
    assert len(floats) == 8 and floats[:4] == pytest.approx(r.data[0].embedding, abs=1e-6)
    row = wait_for_rows(gem, f"request_id = '{raw.headers['x-llmgw-request-id']}'")[0]
    assert row["total_tokens"] is None and row["usage_source"] == "none"  # Gemini does not count embedding tokens


def test_base64_embeddings_are_little_endian_float32(gem):
    raw = oai(gem).embeddings.with_raw_response.create(model="text-embedding-004", input="a", encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    values = struct.unpack("<8f", base64.b64decode(encoded))
    assert values == pytest.approx([round(b / 255, 4) for b in hashlib.sha256(b"a").digest()[:8]], abs=1e-6)
