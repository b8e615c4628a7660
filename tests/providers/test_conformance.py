"""One conformance suite for every provider kind: the official openai SDK, through a real
`llmgw serve`, against each kind's strict fake upstream over real HTTP.

Every kind runs the same scenarios: a plain answer with usage; a stream with
``include_usage`` (usage chunk last) and one without (no usage for the client, tokens in the
log); a tool call requested by the model, whole and streamed; the tool result sent back; a 429
and a 503 from the provider falling back to a second target (and alone keeping the status); a
parameter the kind refuses (a 400 naming it, or the next target serves it) — or, for kinds
that pass everything through, the parameter reaching the provider untouched; a wrong key
(502 ``upstream_auth_error``); and the key never showing in log rows, error bodies,
``/metrics`` or the server log. After every test, the fakes must have received nothing their
API would reject (``fake.invalid``, the backup target's included).

Adding a provider kind = adding one :class:`Kind` to ``KINDS``: its fake, its policy block,
and the model names that make the fake answer, call a tool or fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import UPSTREAM_KEY, Gateway, wait_for_rows
from fake_anthropic import FakeAnthropic
from fake_azure import FakeAzure
from fake_gemini import FakeGemini
from fake_openai import FakeOpenAI

from llmgw_kernel.policy.model import ProviderKind

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
USER = [{"role": "user", "content": "weather in Paris?"}]
BACKUP = "backup/gpt-4o"
#: fields every kind that passes requests through must deliver untouched
PASSED = {"logprobs": True, "top_logprobs": 2, "logit_bias": {"50256": -100}}


@dataclass(frozen=True)
class Failure:
    model: str  # the target model that makes the fake answer with this error
    says: str  # a piece of the provider's error message, which the client must see


@dataclass(frozen=True)
class Kind:
    """A provider kind under test, and how to make its fake do each thing the suite needs."""

    name: str  # the provider kind (and the provider's name in the policy)
    fake: Callable[[str], Any]  # the api key -> a fake (``start()``, ``base_url``, ``requests``, ``invalid``)
    block: Callable[[str], dict[str, Any]]  # the fake's base_url -> the provider's policy block
    plain: str  # a model that echoes the last user message: ``echo`` + its text
    echo: str
    usage: tuple[int, int, int]  # (prompt, completion, total) tokens its answers report
    tool: str  # a model that calls the first tool with {"city": "Paris"} until it gets a result
    tool_id: str  # how the ids of its tool calls start
    busy: Failure  # -> 429
    down: Failure  # -> 503
    wrong_key: str  # a piece of the provider's answer to a wrong key
    quotes_key: str  # a model that answers a 400 quoting the key it received (the gateway must scrub it)
    #: (request fields, the param the 400 names) the kind refuses; empty: it passes everything through
    refused: tuple[tuple[dict[str, Any], str], ...] = ()


KINDS = (
    Kind(
        "openai", FakeOpenAI, lambda url: {"kind": "openai", "base_url": url},
        plain="gpt-4o-mini", echo="Hello from the fake upstream: ", usage=(11, 7, 18),
        tool="tool-call", tool_id="call_01",
        busy=Failure("status-429", "fake upstream failure 429"), down=Failure("status-503", "fake upstream failure 503"),
        wrong_key="Incorrect API key provided", quotes_key="echo-key",
    ),
    Kind(
        "azure", FakeAzure, lambda url: {"kind": "azure", "base_url": url, "api_version": "2024-10-21"},
        plain="gpt-4o-prod", echo="Azure heard: ", usage=(15, 6, 21),
        tool="tool-dep", tool_id="call_azure_1",
        busy=Failure("busy-dep", "exceeded token rate limit"), down=Failure("down-dep", "temporarily unable"),
        wrong_key="Access denied", quotes_key="echo-key-dep",
    ),
    Kind(
        "anthropic", FakeAnthropic, lambda url: {"kind": "anthropic", "base_url": url},
        plain="claude-sonnet", echo="Claude heard: ", usage=(25, 9, 34),  # 21 input + 4 cache read
        tool="claude-tool", tool_id="toolu_01",
        busy=Failure("claude-rate-limited", "exceed the rate limit"),
        down=Failure("claude-overloaded", "Overloaded"),  # HTTP 529 overloaded_error
        wrong_key="invalid x-api-key", quotes_key="claude-echo-key",
        refused=(
            ({"logprobs": True}, "logprobs"),
            ({"n": 2}, "n"),
            ({"temperature": 1.5}, "temperature"),
            ({"some_new_param": 1}, "some_new_param"),
        ),
    ),
    Kind(
        "gemini", FakeGemini, lambda url: {"kind": "gemini", "base_url": url},
        plain="gemini-flash", echo="Gemini heard: ", usage=(12, 12, 24),  # 7 candidates + 5 thoughts
        tool="gemini-tool", tool_id="call_",
        busy=Failure("gemini-429", "RESOURCE_EXHAUSTED"), down=Failure("gemini-503", "UNAVAILABLE"),
        wrong_key="API key not valid", quotes_key="gemini-echo-key",
        refused=(
            ({"logprobs": True}, "logprobs"),
            ({"logit_bias": {"1": 2}}, "logit_bias"),
            ({"n": 9}, "n"),
            ({"reasoning_effort": "extreme"}, "reasoning_effort"),
            ({"some_new_param": 1}, "some_new_param"),
            ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
            ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]},
             "messages[1].tool_call_id"),
        ),
    ),
)  # fmt: skip
OFFLINE = {"demo"}  # built in: no upstream, nothing to conform to
FAILURES = [pytest.param("busy", 429, id="429"), pytest.param("down", 503, id="503")]
STREAM = [pytest.param(False, id="json"), pytest.param(True, id="stream")]


class Stack:
    """One kind's fake behind a real `llmgw serve`, with a second target (an OpenAI fake) to fall back to."""

    def __init__(self, kind: Kind, tmp: Path, backup: FakeOpenAI) -> None:
        self.kind = kind
        self.key = f"{kind.name}-conformance-key-0123456789abcdef"
        self.bad_key = f"{kind.name}-wrong-key-0123456789abcdef"
        self.fake = kind.fake(self.key).start()
        block = kind.block(self.fake.base_url)
        routes = {
            "plain": [kind.plain], "tool": [kind.tool], "busy": [kind.busy.model], "down": [kind.down.model],
            "quotes-key": [kind.quotes_key],
        }  # fmt: skip
        targets = {name: [{"provider": kind.name, "model": m} for m in models] for name, models in routes.items()}
        for name in ("plain", "busy", "down"):
            targets[f"{name}-then-backup"] = [*targets[name], {"provider": "backup", "model": "gpt-4o"}]
        targets["wrong-key"] = [{"provider": "badkey", "model": kind.plain}]
        policy = {
            "providers": {
                kind.name: {**block, "api_key_env": "CONFORMANCE_KEY"},
                "badkey": {**block, "api_key_env": "CONFORMANCE_BAD_KEY"},
                "backup": {"kind": "openai", "base_url": backup.base_url, "api_key_env": "LOCAL_API_KEY"},
            },
            "routes": {name: {"targets": t} for name, t in targets.items()},
            "log": {"flush_ms": 100},
        }
        self.gw = Gateway(tmp, policy, env={"CONFORMANCE_KEY": self.key, "CONFORMANCE_BAD_KEY": self.bad_key})

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.base_url, api_key="unused", max_retries=0)

    def row(self, request_id: str) -> dict[str, Any]:
        rows = wait_for_rows(self.gw, f"request_id = '{request_id}'")
        assert rows, f"no log row for {request_id}"
        return rows[0]

    def stop(self) -> None:
        self.gw.terminate()
        self.fake.stop()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI) -> Iterator[dict[str, Stack]]:
    """One stack per kind, started when a test first needs it and kept for the module."""

    class Lazy(dict):
        def __missing__(self, name: str) -> Stack:
            kind = next(k for k in KINDS if k.name == name)
            self[name] = Stack(kind, tmp_path_factory.mktemp(name), upstream)
            return self[name]

    started = Lazy()
    yield started
    for stack in started.values():
        stack.stop()


@pytest.fixture(params=KINDS, ids=lambda k: k.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param


@pytest.fixture
def stack(kind: Kind, stacks: dict[str, Stack], upstream: FakeOpenAI) -> Iterator[Stack]:
    """The kind's stack; afterwards, every request its fake and the backup received must be valid for their API."""
    s = stacks[kind.name]
    backup_before = len(upstream.invalid)
    yield s
    invalid, s.fake.invalid[:] = list(s.fake.invalid), []
    assert not invalid, f"the gateway sent requests the {kind.name} API would reject: {invalid}"
    assert upstream.invalid[backup_before:] == [], "the gateway sent the backup target requests OpenAI would reject"


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finishes(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def one_stream(chunks: list[Any]) -> list[Any]:
    """``chunks``, checked to be one OpenAI stream: the same id, model and created on every chunk."""
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({(c.id, c.model, c.created) for c in chunks}) == 1 and chunks[0].id and chunks[0].model
    return chunks


def usage_of(usage: Any) -> tuple[int, int, int]:
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


def test_every_provider_kind_runs_the_suite():
    assert {k.name for k in KINDS} == set(ProviderKind.__args__) - OFFLINE


# -- answers and usage --------------------------------------------------------------------------
def test_plain_answer_and_usage(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="plain", messages=[{"role": "user", "content": "hello there"}]
    )
    r = raw.parse()
    assert r.object == "chat.completion" and r.id and r.model and r.created
    assert r.choices[0].message.content == stack.kind.echo + "hello there"
    assert (r.choices[0].finish_reason, r.choices[0].message.role) == ("stop", "assistant")
    assert usage_of(r.usage) == stack.kind.usage
    assert raw.headers["x-llmgw-target"] == f"{stack.kind.name}/{stack.kind.plain}"
    row = stack.row(raw.headers["x-llmgw-request-id"])
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == stack.kind.usage
    assert (row["status"], row["outcome"], row["provider"]) == (200, "ok", stack.kind.name)


def test_stream_with_include_usage_ends_with_the_usage_chunk(stack):
    chunks = list(stack.client().chat.completions.create(
        model="plain", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream please"}],
    ))  # fmt: skip
    *body, last = one_stream(chunks)
    assert last.choices == [] and usage_of(last.usage) == stack.kind.usage
    assert all(c.usage is None and c.choices and c.choices[0].delta is not None for c in body), "a delta in every chunk"
    assert text_of(body) == stack.kind.echo + "stream please"
    assert finishes(body) == ["stop"] and body[-1].choices[0].finish_reason == "stop"


def test_stream_without_include_usage_sends_no_usage_but_logs_it(stack):
    with httpx.stream("POST", f"{stack.gw.base_url}/chat/completions", json={
        "model": "plain", "stream": True, "messages": [{"role": "user", "content": "quiet"}]}) as r:  # fmt: skip
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        request_id = r.headers["x-llmgw-request-id"]
        raw = r.read().decode()
    assert '"usage"' not in raw and raw.rstrip().endswith("data: [DONE]")
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == stack.kind.echo + "quiet"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    row = stack.row(request_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == stack.kind.usage
    assert row["stream"] and row["outcome"] == "ok"


# -- tools ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", STREAM)
def test_the_model_calls_a_tool(stack, stream):
    kw = {"model": "tool", "tools": TOOLS, "tool_choice": "auto", "messages": USER}
    if not stream:
        r = stack.client().chat.completions.create(**kw)
        message = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls" and message.content is None
        (call,) = message.tool_calls
        assert call.id.startswith(stack.kind.tool_id) and call.type == "function"
        assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
        assert usage_of(r.usage) == stack.kind.usage
        return
    *body, last = one_stream(
        list(stack.client().chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    )
    deltas = [tc for c in body for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith(stack.kind.tool_id) and deltas[0].function.name == "get_weather"
    assert [d.id for d in deltas if d.id] == [deltas[0].id] and {d.index for d in deltas} == {0}
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert text_of(body) == "" and finishes(body) == ["tool_calls"]
    assert last.choices == [] and usage_of(last.usage) == stack.kind.usage


@pytest.mark.parametrize("stream", STREAM)
def test_the_tool_result_goes_back_and_the_model_uses_it(stack, stream):
    c = stack.client()
    asked = c.chat.completions.create(model="tool", tools=TOOLS, messages=USER).choices[0].message
    result = {"role": "tool", "tool_call_id": asked.tool_calls[0].id, "content": "18C and sunny"}
    kw = {"model": "tool", "tools": TOOLS, "messages": [*USER, asked.model_dump(exclude_none=True), result]}
    if stream:
        chunks = one_stream(list(c.chat.completions.create(stream=True, **kw)))
        assert (text_of(chunks), finishes(chunks)) == ("The tool said: 18C and sunny", ["stop"])
    else:
        r = c.chat.completions.create(**kw)
        assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("The tool said: 18C and sunny", "stop")
        assert r.choices[0].message.tool_calls is None


# -- failures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("route", "status"), FAILURES)
def test_a_busy_or_down_provider_falls_back(stack, route, status, stream):
    raw = stack.client().chat.completions.with_raw_response.create(
        model=f"{route}-then-backup", messages=USER, stream=stream
    )
    assert raw.headers["x-llmgw-target"] == BACKUP
    answer = text_of(list(raw.parse())) if stream else raw.parse().choices[0].message.content
    assert answer == "Hello from the fake upstream: weather in Paris?"
    row = stack.row(raw.headers["x-llmgw-request-id"])
    assert [a["status"] for a in row["attempts"]] == [status, 200] and row["target"] == BACKUP


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("route", "status"), FAILURES)
def test_a_busy_or_down_provider_alone_keeps_its_status(stack, route, status, stream):
    with pytest.raises(openai.APIStatusError) as exc:
        answer = stack.client().chat.completions.create(model=route, messages=USER, stream=stream)
        if stream:
            list(answer)
    assert exc.value.status_code == status and exc.value.body["code"] == f"upstream_{status}"
    assert getattr(stack.kind, route).says in exc.value.body["message"]


@pytest.mark.parametrize("stream", STREAM)
def test_a_wrong_key_is_a_502_auth_error_without_the_key(stack, stream):
    with pytest.raises(openai.APIStatusError) as exc:
        stack.client().chat.completions.create(model="wrong-key", messages=USER, stream=stream)
    assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_auth_error"
    assert stack.kind.wrong_key in exc.value.body["message"]
    assert stack.bad_key not in exc.value.response.text and stack.key not in exc.value.response.text


# -- parameters -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "fields", "param"), [
    pytest.param(k, fields, param, id=f"{k.name}-{param}") for k in KINDS for fields, param in k.refused
])  # fmt: skip
def test_a_refused_parameter_is_a_400_naming_it(stack, fields, param):
    body = {"messages": USER, **fields}
    sent_before = len(stack.fake.requests)
    with pytest.raises(openai.BadRequestError) as exc:
        stack.client().chat.completions.create(model="plain", messages=body.pop("messages"), extra_body=body)
    assert exc.value.body["param"] == param and exc.value.body["code"] == "unsupported_parameter"
    assert len(stack.fake.requests) == sent_before, "refused by the gateway, never sent"


@pytest.mark.parametrize("kind", [k for k in KINDS if not k.refused], ids=lambda k: k.name)
def test_a_pass_through_kind_delivers_every_parameter_untouched(stack):
    r = stack.client().chat.completions.create(model="plain", messages=USER, **PASSED)
    assert r.choices[0].message.content == stack.kind.echo + USER[0]["content"]
    sent = stack.fake.requests[-1]["body"]
    assert {k: sent.get(k) for k in PASSED} == PASSED and sent["messages"] == USER


def test_a_parameter_the_target_refuses_is_left_to_the_next_target(stack):
    """A refusing kind leaves the request to the backup; a pass-through kind serves it itself."""
    fields, _ = stack.kind.refused[0] if stack.kind.refused else (PASSED, None)
    raw = stack.client().chat.completions.with_raw_response.create(
        model="plain-then-backup", messages=USER, extra_body=fields
    )
    assert raw.headers["x-llmgw-target"] == (BACKUP if stack.kind.refused else f"{stack.kind.name}/{stack.kind.plain}")


# -- secrets (last: it reads everything the tests above logged) -----------------------------------------------
def test_the_key_never_leaks(stack):
    c = stack.client()
    bodies, last_id = [], ""
    for route in ("wrong-key", "busy", "down", "quotes-key"):
        with pytest.raises(openai.APIStatusError) as exc:
            c.chat.completions.create(model=route, messages=USER)
        bodies.append(exc.value.response.text)
        last_id = exc.value.response.headers["x-llmgw-request-id"]
    assert exc.value.status_code == 400 and "***" in exc.value.body["message"], "the quoted key, scrubbed"
    stack.row(last_id)  # flushed: every earlier row is in the log too
    rows = str(wait_for_rows(stack.gw, "true"))
    metrics = httpx.get(f"{stack.gw.url}/metrics").text
    for secret in (stack.key, stack.bad_key, UPSTREAM_KEY):
        for where, text in (("log rows", rows), ("error bodies", " ".join(bodies)), ("/metrics", metrics),
                            ("the server log", stack.gw.server_log())):  # fmt: skip
            assert secret not in text, f"a provider key leaked into {where}"
