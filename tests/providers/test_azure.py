"""The openai SDK, through llmgw, against an Azure OpenAI target (a strict fake Azure resource): what
is particular to Azure (deployments, api-version, content filters). What every kind must do
(answers, usage, streams, tool calls, fallback, keys) is in test_conformance.py."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import Gateway, wait_for_rows
from fake_azure import FakeAzure

KEY = "azure-test-key-0123456789abcdefghij"
VERSION = "2024-10-21"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
USER = [{"role": "user", "content": "weather in Paris?"}]


@pytest.fixture(scope="module")
def az(tmp_path_factory, upstream):
    fake = FakeAzure(KEY).start()
    azure = {"kind": "azure", "base_url": fake.base_url, "api_version": VERSION, "api_key_env": "AZURE_TEST_KEY"}
    policy = {
        "providers": {
            "azure": azure,
            "azure-old": {**azure, "api_version": "2024-06-01", "stream_usage": False},
            "backup": {"kind": "openai", "base_url": upstream.base_url, "api_key_env": "LOCAL_API_KEY"},
        },
        "routes": {
            **{d: {"targets": [{"provider": "azure", "model": d}]} for d in (
                "gpt-4o-prod", "tool-dep", "filtered-prompt", "filtered-output", "embed-dep", "no-such-dep")},
            "old": {"targets": [{"provider": "azure-old", "model": "gpt-4o-prod"}]},
            "filtered-then-backup": {"targets": [{"provider": "azure", "model": "filtered-prompt"}, {"provider": "backup", "model": "gpt-4o"}]},
        },
        "log": {"flush_ms": 100},
    }  # fmt: skip
    gw = Gateway(tmp_path_factory.mktemp("azure"), policy, env={"AZURE_TEST_KEY": KEY})
    gw.fake = fake  # type: ignore[attr-defined]
    yield gw
    gw.terminate()
    fake.stop()
    assert fake.invalid == [], "the gateway sent requests Azure OpenAI would reject"
    for req in fake.requests:
        assert "model" not in (req["body"] or {}), "the deployment in the URL decides, not a body model"
        assert KEY not in json.dumps(req["query"]) and "Authorization" not in req["headers"]


def oai(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def sent(gw) -> dict:
    return gw.fake.requests[-1]


def test_plain_answer_usage_and_wire_format(az):
    r = oai(az).chat.completions.create(model="gpt-4o-prod", temperature=0.3, max_tokens=50, seed=1, messages=USER)
    assert r.choices[0].message.content == "Azure heard: weather in Paris?"
    assert (r.choices[0].finish_reason, r.model) == ("stop", "gpt-4o-2024-08-06")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (15, 6, 21)
    assert r.choices[0].model_extra["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    req = sent(az)
    assert (req["path"], req["query"]) == ("/openai/deployments/gpt-4o-prod/chat/completions", {"api-version": VERSION})
    assert req["headers"]["api-key"] == KEY
    assert req["body"] == {"temperature": 0.3, "max_tokens": 50, "seed": 1, "messages": USER}


def test_the_gateway_asks_for_stream_usage_unless_an_older_api_version_turns_it_off(az):
    list(oai(az).chat.completions.create(model="gpt-4o-prod", stream=True, messages=USER))
    assert sent(az)["body"]["stream_options"] == {"include_usage": True}
    chunks = list(oai(az).chat.completions.create(model="old", stream=True, messages=USER))
    assert chunks[-1].choices[0].finish_reason == "stop"
    req = sent(az)
    assert req["query"] == {"api-version": "2024-06-01"} and "stream_options" not in req["body"]


def test_tools_and_tool_turns_pass_through(az):
    c = oai(az)
    first = c.chat.completions.create(model="tool-dep", tools=TOOLS, tool_choice="auto", messages=USER)
    call = first.choices[0].message.tool_calls[0]
    assert sent(az)["body"]["tools"] == TOOLS and sent(az)["body"]["tool_choice"] == "auto"
    second = c.chat.completions.create(model="tool-dep", tools=TOOLS, messages=[
        *USER, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ])  # fmt: skip
    assert second.choices[0].message.content == "The tool said: 18C and sunny"
    assert [m["role"] for m in sent(az)["body"]["messages"]] == ["user", "assistant", "tool"]
    assert sent(az)["body"]["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}


def test_a_filtered_prompt_is_a_clear_400_and_is_not_retried_elsewhere(az):
    for route in ("filtered-prompt", "filtered-then-backup"):
        resp = oai(az).chat.completions.with_raw_response
        with pytest.raises(openai.BadRequestError) as exc:
            resp.create(model=route, messages=[{"role": "user", "content": "something bad"}])
        message = exc.value.body["message"]
        assert "content_filter: The response was filtered" in message
        assert "(filtered: violence=high, jailbreak)" in message
        assert exc.value.body["code"] == "content_filter"
    row = wait_for_rows(az, "route = 'filtered-then-backup'")[0]
    assert [a["target"] for a in row["attempts"]] == ["azure/filtered-prompt"]


@pytest.mark.parametrize("stream", [False, True])
def test_filtered_output_passes_through_as_content_filter(az, stream):
    kw = {"model": "filtered-output", "messages": [{"role": "user", "content": "tell me"}]}
    if not stream:
        r = oai(az).chat.completions.create(**kw)
        assert (r.choices[0].finish_reason, r.choices[0].message.content) == ("content_filter", "Here is how")
        return
    chunks = list(oai(az).chat.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Here is how"
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_an_unknown_deployment_is_a_404(az):
    with pytest.raises(openai.NotFoundError) as exc:
        oai(az).chat.completions.create(model="no-such-dep", messages=USER)
    assert "deployment for this resource does not exist" in exc.value.body["message"]


def test_a_field_the_api_version_lacks_is_azures_400_naming_it(az):
    with pytest.raises(openai.BadRequestError) as exc:
        oai(az).chat.completions.create(model="gpt-4o-prod", messages=USER, extra_body={"verbosity": "low"})
    assert "Unrecognized request argument supplied: verbosity" in exc.value.body["message"]
    assert az.fake.invalid.pop() == "Unrecognized request argument supplied: verbosity"  # sent on purpose


def test_embeddings(az):
    r = oai(az).embeddings.create(model="embed-dep", input=["a", "b"])  # the SDK asks for base64
    assert [d.embedding for d in r.data] == [[1.0, 0.5, -0.25], [2.0, 0.5, -0.25]]
    req = sent(az)
    assert (req["path"], req["query"]) == ("/openai/deployments/embed-dep/embeddings", {"api-version": VERSION})
    assert req["body"] == {"input": ["a", "b"], "encoding_format": "base64"}
    assert r.usage.total_tokens == 4
