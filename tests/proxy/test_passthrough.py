"""Pass-through of ``/v1/responses`` and ``/v1/completions`` to openai/azure targets, decided per
attempt (``proxy/passthrough.py``): the official openai SDK through a real `llmgw serve` in front
of the fake OpenAI upstream, which speaks the Responses API and legacy completions
(``tests/fake_responses.py``). Checked: what the upstream received (the client's body, ``model``
replaced, ``metadata`` kept, ``store: false`` added, PII redacted), that the client gets the
upstream's JSON and events as they are (or redacted), built-in tools served only by
pass-through, fallback to a translated kind in the same plan, failures before and after the
first byte, stored state, usage and cost from the Responses usage, the log rows, the cache
decision and replay parity.
"""

from __future__ import annotations

import json
from typing import Any

import fake_responses
import httpx
import openai
import pytest
from conftest import Gateway, policy_for, responses_events, wait_for_rows
from fake_openai import FakeOpenAI

from llmgw_kernel import load_policy, open_log, replay

LOCAL = [{"provider": "local", "model": "gpt-4o-mini"}]
WEB = [{"type": "web_search"}]
FN_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
REDACT = {"input": [{"type": "pii", "action": "redact", "languages": ["en"]}],
          "output": [{"type": "pii", "action": "redact"}]}  # fmt: skip
EMAIL = "alice.nguyen@example.com"


def routes() -> dict[str, Any]:
    return {
        "plain": {"targets": LOCAL},
        "tool-call": {"targets": [{"provider": "local", "model": "tool-call"}]},
        "demo-then-openai": {"targets": [{"provider": "demo", "model": "demo-echo"}, *LOCAL]},
        "openai-then-demo": {
            "targets": [{"provider": "local", "model": "status-503"}, {"provider": "demo", "model": "demo-echo"}]
        },
        "demo-only": {"targets": [{"provider": "demo", "model": "demo-echo"}]},
        "cut-after": {"targets": [{"provider": "local", "model": "stream-cut-2"}, *LOCAL]},
        "cut-before": {"targets": [{"provider": "local", "model": "stream-cut-0"}, *LOCAL]},
        "redacted": {"targets": [{"provider": "local", "model": "pii-out"}], "guardrails": REDACT},
        "redacted-in": {"targets": LOCAL, "guardrails": REDACT},
        "blocked": {
            "targets": [{"provider": "local", "model": "pii-out"}],
            "guardrails": {"output": [{"type": "pii", "action": "block"}]},
        },
        "cached": {"targets": LOCAL, "cache": {"exact": {"ttl_s": 600}, "semantic": None}},
    }


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    policy = policy_for(upstream.base_url)
    policy["routes"].update(routes())
    g = Gateway(tmp_path_factory.mktemp("passthrough"), policy)
    yield g
    g.terminate()


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)


def row(gw: Gateway, request_id: str) -> dict[str, Any]:
    rows = wait_for_rows(gw, f"request_id = '{request_id}'")
    assert rows, request_id
    return rows[0]


def sent(upstream: FakeOpenAI, before: int, path: str) -> list[dict[str, Any]]:
    return [r["body"] for r in upstream.requests[before:] if r["path"] == path]


# -- /v1/responses ------------------------------------------------------------------------------------
def test_the_body_passes_through_with_model_replaced_and_the_answer_comes_back_as_is(gw, upstream):
    before = len(upstream.requests)
    raw = client(gw).responses.with_raw_response.create(
        model="plain", input="hello there", instructions="Brief.", metadata={"team": "t1"},
        include=["message.output_text.logprobs"], truncation="auto", max_output_tokens=50,
    )  # fmt: skip
    (body,) = sent(upstream, before, "/v1/responses")
    assert body == {"model": "gpt-4o-mini", "input": "hello there", "instructions": "Brief.", "store": False,
                    "include": ["message.output_text.logprobs"], "truncation": "auto", "max_output_tokens": 50}  # fmt: skip
    r = raw.parse()
    assert r.id == "resp_fake_1" and r.output_text == "Hello from the fake upstream: hello there"
    assert b'"object": "response"' in raw.http_response.content  # the upstream's bytes (json.dumps), not orjson's
    got = row(gw, raw.headers["x-llmgw-request-id"])
    assert (got["api"], got["endpoint"], got["target"], got["outcome"]) == (
        "responses", "chat.completions", "local/gpt-4o-mini", "ok")  # fmt: skip
    assert (got["prompt_tokens"], got["completion_tokens"], got["cached_tokens"]) == (11, 7, 3)
    assert json.loads(got["request_body"])["messages"] == [
        {"role": "system", "content": "Brief."}, {"role": "user", "content": "hello there"}]  # fmt: skip
    assert json.loads(got["metadata"])["team"] == "t1"


def test_a_stream_is_the_upstreams_events_byte_for_byte(gw, upstream):
    evs, rid = responses_events(gw, {"model": "plain", "input": "stream me", "tools": WEB})
    expected = fake_responses.stream_events({"model": "gpt-4o-mini", "input": "stream me", "tools": WEB})
    assert [name for name, _ in evs] == [e["type"] for e in expected]
    assert [d["sequence_number"] for _, d in evs] == list(range(len(expected)))
    assert "response.web_search_call.searching" in [name for name, _ in evs]
    with httpx.stream("POST", f"{gw.base_url}/responses", json={"model": "plain", "input": "raw", "stream": True}) as r:
        frames = [f for f in r.read().decode().split("\n\n") if f]
    assert all(f.split("\n")[1].startswith('data: {"type": "') for f in frames)  # json.dumps's bytes, as sent
    done = evs[-1][1]["response"]
    assert [o["type"] for o in done["output"]] == ["web_search_call", "message"]
    assert done["output"][1]["content"][0]["annotations"][0]["url"] == fake_responses.CITED
    got = row(gw, rid)
    assert (got["stream"], got["outcome"], got["prompt_tokens"], got["completion_tokens"]) == (True, "ok", 11, 7)
    assert got["cache_control"] is None


def test_the_sdk_reads_a_streamed_pass_through(gw):
    with client(gw).responses.stream(model="plain", input="helper") as s:
        deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello from the fake upstream: helper"
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_round_trip(gw, upstream, stream):
    c = client(gw)
    asked = c.responses.create(model="tool-call", input="weather?", tools=[FN_TOOL])
    call = asked.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    items = [{"role": "user", "content": "weather?"}, call.model_dump(exclude_none=True),
             {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]  # fmt: skip
    before = len(upstream.requests)
    if stream:
        evs = list(c.responses.create(model="tool-call", input=items, tools=[FN_TOOL], stream=True))
        text = evs[-1].response.output_text
    else:
        text = c.responses.create(model="tool-call", input=items, tools=[FN_TOOL]).output_text
    assert text == "The tool said: sunny"
    (body,) = sent(upstream, before, "/v1/responses")
    assert body["input"][1]["type"] == "function_call" and body["tools"] == [FN_TOOL]


def test_a_built_in_tool_is_served_by_the_openai_target_of_a_mixed_plan(gw, upstream):
    raw = client(gw).responses.with_raw_response.create(model="demo-then-openai", input="weather?", tools=WEB)
    r = raw.parse()
    assert [o.type for o in r.output] == ["web_search_call", "message"]
    got = row(gw, raw.headers["x-llmgw-request-id"])
    assert [a["target"] for a in got["attempts"]] == ["demo/demo-echo", "local/gpt-4o-mini"]
    assert "tools[0].type" in got["attempts"][0]["error"]
    assert got["target"] == "local/gpt-4o-mini"


def test_a_built_in_tool_on_a_route_without_openai_targets_is_a_400_naming_it(gw):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.create(model="demo-only", input="weather?", tools=WEB)
    assert exc.value.body["param"] == "tools[0].type" and exc.value.body["code"] == "unsupported_parameter"


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_failure_falls_back_to_a_translated_kind(gw, stream):
    raw = client(gw).responses.with_raw_response.create(model="openai-then-demo", input="fall back", stream=stream)
    rid = raw.headers["x-llmgw-request-id"]
    parsed = raw.parse()
    r = list(parsed)[-1].response if stream else parsed
    assert r.id == "resp_" + rid.removeprefix("req_") and "fall back" in r.output_text  # the gateway's translation
    got = row(gw, rid)
    assert [a["status"] for a in got["attempts"]] == [503, 200] and got["target"] == "demo/demo-echo"


def test_a_stream_cut_after_its_first_byte_ends_with_an_error_event(gw):
    evs, rid = responses_events(gw, {"model": "cut-after", "input": "cut"})
    assert [name for name, _ in evs] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert evs[2][1]["code"] == "upstream_unreachable" and evs[3][1]["response"]["id"] == "resp_fake_1"
    assert [d["sequence_number"] for _, d in evs] == [0, 1, 2, 3]
    got = row(gw, rid)
    assert (got["status"], got["outcome"]) == (200, "upstream_error")


def test_a_stream_cut_before_its_first_byte_falls_back(gw):
    evs, rid = responses_events(gw, {"model": "cut-before", "input": "again"})
    assert evs[-1][0] == "response.completed"
    got = row(gw, rid)
    assert [a["target"] for a in got["attempts"]] == ["local/stream-cut-0", "local/gpt-4o-mini"]


def test_input_redaction_reaches_the_forwarded_body(gw, upstream):
    before = len(upstream.requests)
    items = [{"role": "user", "content": [{"type": "input_text", "text": f"Mail me at {EMAIL} please"}]},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": json.dumps({"to": EMAIL})},
             {"type": "function_call_output", "call_id": "c1", "output": f"sent to {EMAIL}"}]  # fmt: skip
    client(gw).responses.create(model="redacted-in", input=items, instructions=f"The user is {EMAIL}.")
    (body,) = sent(upstream, before, "/v1/responses")
    assert EMAIL not in json.dumps(body)
    assert body["input"][0]["content"][0]["text"] == "Mail me at <EMAIL_ADDRESS_1> please"
    assert body["instructions"] == "The user is <EMAIL_ADDRESS_1>."
    assert json.loads(body["input"][1]["arguments"]) == {"to": "<EMAIL_ADDRESS_1>"}
    assert body["input"][2]["output"] == "sent to <EMAIL_ADDRESS_1>"


def test_output_redaction_of_a_whole_answer(gw):
    r = client(gw).responses.create(model="redacted", input="contact?")
    assert r.id == "resp_fake_1" and EMAIL not in r.output_text and "555" not in r.output_text
    assert r.output_text.startswith("Write to <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1>")


def test_output_redaction_across_delta_boundaries_in_a_stream(gw):
    evs, rid = responses_events(gw, {"model": "redacted", "input": "contact?"})
    text = "".join(d["delta"] for name, d in evs if name == "response.output_text.delta")
    assert text == "Write to <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1> today."
    (done,) = [d for name, d in evs if name == "response.output_text.done"]
    final = evs[-1][1]["response"]["output"][0]["content"][0]["text"]
    assert done["text"] == final == text and "555" not in json.dumps(evs)
    assert evs[-1][0] == "response.completed"
    assert row(gw, rid)["guardrails"]  # the verdicts


def test_an_output_block_ends_a_stream_with_an_error_event_and_nothing_it_held(gw):
    evs, rid = responses_events(gw, {"model": "blocked", "input": "contact?"})
    names = [name for name, _ in evs]
    assert names[-2:] == ["error", "response.failed"] and "response.output_text.delta" not in names
    assert evs[-2][1]["code"] == "guardrail_blocked" and EMAIL not in json.dumps(evs)
    assert row(gw, rid)["outcome"] != "ok"
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.create(model="blocked", input="contact?")
    assert exc.value.body["code"] == "guardrail_blocked"


# -- stored state ---------------------------------------------------------------------------------------
def test_stored_state_is_forwarded_on_a_single_openai_provider_route(gw, upstream):
    before = len(upstream.requests)
    r = client(gw).responses.create(model="plain", input="go on", previous_response_id="resp_prev", store=True)
    assert r.status == "completed"
    (body,) = sent(upstream, before, "/v1/responses")
    assert (body["previous_response_id"], body["store"]) == ("resp_prev", True)


@pytest.mark.parametrize("route", ["demo-then-openai", "split"])
def test_stored_state_is_refused_where_one_provider_does_not_hold_it(gw, route):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.create(model=route, input="go on", previous_response_id="resp_prev")
    assert exc.value.body["param"] == "previous_response_id" and "storage" in exc.value.body["message"]


# -- /v1/completions ---------------------------------------------------------------------------------------
def test_legacy_completions_pass_through_with_what_translation_refuses(gw, upstream):
    before = len(upstream.requests)
    raw = client(gw).completions.with_raw_response.create(model="plain", prompt="Once upon", echo=True, max_tokens=5)
    (body,) = sent(upstream, before, "/v1/completions")
    assert body == {"model": "gpt-4o-mini", "prompt": "Once upon", "echo": True, "max_tokens": 5}
    c = raw.parse()
    assert c.id == "cmpl-fake" and c.choices[0].text == "Once uponHello from the fake upstream: Once upon"
    got = row(gw, raw.headers["x-llmgw-request-id"])
    assert (got["api"], got["prompt_tokens"], got["completion_tokens"]) == ("completions", 11, 7)


@pytest.mark.parametrize("include_usage", [False, True])
def test_legacy_completions_stream_as_the_upstream_sent_them(gw, upstream, include_usage):
    opts = {"stream_options": {"include_usage": True}} if include_usage else {}
    before = len(upstream.requests)
    raw = client(gw).completions.with_raw_response.create(model="plain", prompt="tell", stream=True, **opts)
    chunks = list(raw.parse())
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the fake upstream: tell"
    assert all(c.id == "cmpl-fake" for c in chunks)
    assert [c.usage.total_tokens for c in chunks if c.usage] == ([18] if include_usage else [])
    (body,) = sent(upstream, before, "/v1/completions")
    assert body["stream_options"] == {"include_usage": True}  # the gateway asks, to cost the stream
    assert row(gw, raw.headers["x-llmgw-request-id"])["completion_tokens"] == 7


def test_an_openai_compatible_server_without_responses_is_asked_through_chat(make_gateway):
    class ChatOnly(FakeOpenAI):
        def routes(self, app):
            app.router.add_post("/v1/chat/completions", self.chat)
            app.router.add_post("/{path:.*}", self.elsewhere)

    fake = ChatOnly(api_key=None).start()
    try:
        g = make_gateway(policy_for(fake.base_url))
        r = client(g).responses.create(model="gpt-4o-mini", input="old server")
        assert r.output_text == "Hello from the fake upstream: old server"
        assert fake.invalid == ["Unknown path: /v1/responses"]  # asked first, answered 404
        assert [x["path"] for x in fake.requests] == ["/v1/chat/completions"]
    finally:
        fake.stop()


def test_a_provider_with_passthrough_false_is_asked_through_chat_without_the_404_round_trip(make_gateway, upstream):
    policy = policy_for(upstream.base_url)
    policy["providers"]["local"]["passthrough"] = False
    g = make_gateway(policy)
    before = len(upstream.requests)
    r = client(g).responses.create(model="gpt-4o-mini", input="translated")
    assert r.output_text == "Hello from the fake upstream: translated"
    c = client(g).completions.create(model="gpt-4o-mini", prompt="old style")
    assert c.choices[0].text.startswith("Hello from the fake upstream")
    assert [x["path"] for x in upstream.requests[before:]] == ["/v1/chat/completions"] * 2
    with pytest.raises(openai.BadRequestError) as exc:  # only pass-through serves a built-in tool
        client(g).responses.create(model="gpt-4o-mini", input="search", tools=WEB)
    assert exc.value.body["code"] == "unsupported_parameter" and "web_search" in exc.value.message


def test_passthrough_is_a_setting_of_openai_and_azure_providers_only_and_leaves_versions_alone():
    from llmgw_kernel.policy.load import PolicyError
    from llmgw_kernel.policy.load import validate_policy as parse_policy

    doc = {"providers": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
           "routes": {"r": {"targets": [{"provider": "local", "model": "m"}]}}}  # fmt: skip
    plain = parse_policy(json.loads(json.dumps(doc)))
    doc["providers"]["local"]["passthrough"] = True
    assert parse_policy(doc).version != plain.version  # a stated choice is part of the policy
    doc["providers"]["local"].pop("passthrough")
    assert parse_policy(doc).version == plain.version
    with pytest.raises(PolicyError, match="passthrough is only used by kinds"):
        parse_policy({"providers": {"d": {"kind": "demo", "passthrough": False}},
                      "routes": {"r": {"targets": [{"provider": "d", "model": "demo-echo"}]}}})  # fmt: skip


# -- cache and replay ---------------------------------------------------------------------------------------
def test_a_pass_through_answer_is_cached_in_chat_form_and_served_translated(gw):
    c = client(gw)
    first = c.responses.with_raw_response.create(model="cached", input="cache me")
    assert first.parse().id == "resp_fake_1" and first.headers["x-llmgw-cache"] == "miss"
    again = c.responses.with_raw_response.create(model="cached", input="cache me")
    assert again.headers["x-llmgw-cache"] == "hit"
    assert again.parse().output_text == first.parse().output_text
    chat = c.chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": "cache me"}]
    )
    assert chat.headers["x-llmgw-cache"] == "hit"  # one cache for every API


def test_a_request_only_pass_through_serves_is_not_cached(gw):
    c = client(gw)
    for _ in range(2):  # a chat answer could not hold its web_search_call item: never stored, never served
        raw = c.responses.with_raw_response.create(model="cached", input="search me", tools=WEB)
        assert raw.headers["x-llmgw-cache"] == "bypass" and raw.parse().output[0].type == "web_search_call"
    got = row(gw, raw.headers["x-llmgw-request-id"])
    assert (got["cache"], got["cache_control"]) == ("bypass", "no-store")


def test_replay_of_pass_through_traffic_has_no_differences(make_gateway, upstream):
    policy = policy_for(upstream.base_url)
    policy["routes"].update(routes())
    g = make_gateway(policy)
    c = client(g)
    for i in range(12):
        c.responses.create(model="cached", input=f"q{i % 4}", stream=i % 2 == 0)
        c.responses.create(model="demo-then-openai", input=f"w{i % 3}", tools=WEB)
        c.completions.create(model="split", prompt=f"p{i % 5}")
    c.responses.create(model="openai-then-demo", input="x")
    g.terminate()
    result = replay(load_policy(g.policy_path), open_log(g.data_dir))
    assert result.summary["requests"] == 37
    assert all(v == 0 for v in result.summary["differs_from_log"].values()) and result.compare_to_log() == 0
    hits = open_log(g.data_dir).sql("SELECT count(*) FROM requests WHERE cache = 'hit'").fetchall()
    assert hits == [(8,)]


# -- azure ------------------------------------------------------------------------------------------------
def test_azure_gets_its_documented_paths(make_gateway, upstream):
    from fake_azure import FakeAzure

    key = "azure-key-0123456789"
    fake = FakeAzure(key).start()
    try:
        policy = policy_for(upstream.base_url)
        policy["providers"]["az"] = {"kind": "azure", "base_url": fake.base_url, "api_version": "2024-10-21",
                                     "api_key_env": "AZ_KEY"}  # fmt: skip
        policy["routes"]["az"] = {"targets": [{"provider": "az", "model": "gpt-4o-prod"}]}
        g = make_gateway(policy, env={"AZ_KEY": key})
        r = client(g).responses.create(model="az", input="hi azure", tools=WEB)
        assert [o.type for o in r.output] == ["web_search_call", "message"] and r.output_text == "Azure heard: hi azure"
        c = client(g).completions.create(model="az", prompt="legacy", stream=True)
        assert "".join(x.choices[0].text for x in c if x.choices) == "Hello from the fake upstream: legacy"
        (resp, comp) = fake.requests
        assert (resp["path"], resp["query"], resp["body"]["model"]) == (
            "/openai/responses", {"api-version": "2024-10-21"}, "gpt-4o-prod")  # fmt: skip
        assert comp["path"] == "/openai/deployments/gpt-4o-prod/completions" and "model" not in comp["body"]
        assert fake.invalid == []
    finally:
        fake.stop()
