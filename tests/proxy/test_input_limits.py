"""Input limits (docs/server.md, "Input limits"): JSON nested deeper than MAX_JSON_DEPTH is
refused at parse time, and a value of the wrong type reaching a translating provider is a 400
naming it — never a 5xx, always logged, the log writer healthy after it (issue 10, items 1-2).

Unit tests for the depth check, then one real `llmgw serve` in front of a fake of each
provider kind (tests/fuzzgen.py's stack) for the end-to-end cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Gateway, wait_for_rows
from fuzzgen import UPSTREAM_KEY, nested, policy, start_fakes

from llmgw_kernel.proxy.errors import GatewayError
from llmgw_kernel.proxy.validate import MAX_JSON_DEPTH, load_json, too_deep


def depth(value: Any) -> int:
    """Reference: the nesting depth by plain recursion (fine for the small depths tested here)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# -- the depth check ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["object", "array", "mixed"])
def test_the_limit_is_exact(kind: str) -> None:
    for n in range(1, 3 * MAX_JSON_DEPTH):
        body = {"model": "m", "metadata": nested(n - 1, {"k": [1, "x"]}, kind)}
        raw = json.dumps(body).encode()
        deep_enough = depth(body) > MAX_JSON_DEPTH
        assert (too_deep(body) is not None) == deep_enough, n
        if deep_enough:
            with pytest.raises(GatewayError) as exc:
                load_json(raw)
            assert exc.value.status == 400 and exc.value.code == "nesting_too_deep"
            assert exc.value.param is not None and exc.value.param.startswith("metadata")
        else:
            assert load_json(raw) == body


def test_brackets_inside_strings_do_not_count() -> None:
    text = "[{" * 500
    assert load_json(json.dumps({"messages": [{"role": "user", "content": text}]}))["messages"][0]["content"] == text


def test_the_error_names_the_parameter_two_levels_down() -> None:
    cases = {
        "metadata.a.a": {"metadata": nested(100)},
        "messages[0].content": {"messages": [{"role": "user", "content": nested(100, kind="array")}]},
        "tools[0].function": {"tools": [{"function": nested(100)}]},
        "[0][0][0]": nested(100, kind="array"),  # a body that is not an object: three levels
    }
    for param, body in cases.items():
        with pytest.raises(GatewayError) as exc:
            load_json(json.dumps(body))
        assert exc.value.param == param, body
        assert f"'{param}'" in exc.value.message and str(MAX_JSON_DEPTH) in exc.value.message


def test_a_header_is_named_as_the_parameter() -> None:
    with pytest.raises(GatewayError) as exc:
        load_json(json.dumps(nested(300)).encode(), "x-llmgw-metadata", "x-llmgw-metadata")
    assert exc.value.param == "x-llmgw-metadata" and "'a.a.a' in x-llmgw-metadata" in exc.value.message
    with pytest.raises(GatewayError) as exc:
        load_json(b'{"a": ', "x-llmgw-metadata", "x-llmgw-metadata")
    assert exc.value.param == "x-llmgw-metadata" and exc.value.code == "invalid_json"


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fakes = start_fakes()
    tmp: Path = tmp_path_factory.mktemp("limits")
    gateway = Gateway(tmp, policy({k: f.base_url for k, f in fakes.items()}), env={"FUZZ_UPSTREAM_KEY": UPSTREAM_KEY})
    yield gateway
    gateway.terminate()
    for fake in fakes.values():
        fake.stop()


USER = [{"role": "user", "content": "hi"}]


def send(gw: Gateway, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{gw.url}{path}", content=content, headers={"content-type": "application/json", **(headers or {})},
                      timeout=30)  # fmt: skip


def logged(gw: Gateway, r: httpx.Response) -> dict[str, Any]:
    rid = r.headers["x-request-id"]
    rows = wait_for_rows(gw, f"request_id = '{rid}' OR client_request_id = '{rid}'")
    assert len(rows) == 1, f"{len(rows)} log rows for {rid}"
    return rows[0]


def refused(gw: Gateway, r: httpx.Response, param: str, code: str | None = None) -> None:
    """A 400 naming ``param`` (OpenAI's or, on /v1/messages, Anthropic's error body), logged as one."""
    assert r.status_code == 400, r.text[:500]
    body = r.json()
    if "type" in body and body["type"] == "error":  # /v1/messages
        assert param in body["error"]["message"], body
    else:
        err = body["error"]
        assert err["param"] == param, err
        if code is not None:
            assert err["code"] == code, err
    row = logged(gw, r)
    assert row["status"] == 400 and row["outcome"] == "client_error"


def healthy(gw: Gateway) -> None:
    """The writer still takes rows: a good request afterwards is logged, and /health is 200."""
    r = send(gw, "/v1/chat/completions", {"model": "chat-openai", "messages": USER})
    assert r.status_code == 200, r.text
    assert logged(gw, r)["status"] == 200
    assert httpx.get(f"{gw.url}/health", timeout=10).status_code == 200


DEEP = nested(300)
CHAT_DEEP = [
    pytest.param({"model": "chat-openai", "messages": USER, "metadata": DEEP}, "metadata.a.a", id="metadata"),
    pytest.param({"model": "no-such-route", "messages": USER, "metadata": DEEP}, "metadata.a.a", id="metadata-404"),
    pytest.param({"model": "chat-openai", "messages": USER, "stop": nested(300, "x", "array")}, "stop[0][0]", id="stop"),
    pytest.param({"model": "chat-openai", "messages": USER, "tools": [DEEP]}, "tools[0].a", id="tools"),
    pytest.param({"model": "chat-openai", "messages": USER, "user": DEEP}, "user.a.a", id="user"),
    pytest.param({"model": "chat-anthropic", "messages": [{"role": "user", "content": nested(900, "x", "array")}]},
                 "messages[0].content", id="content-900"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param"), CHAT_DEEP)
def test_deep_chat_input_is_refused_at_parse_time(gw: Gateway, body: dict[str, Any], param: str) -> None:
    refused(gw, send(gw, "/v1/chat/completions", body), param, "nesting_too_deep")
    healthy(gw)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"model": "emb-openai", "input": nested(300, "x", "array")}, "input[0][0]", id="input"),
        pytest.param({"model": "emb-gemini", "input": "x", "dimensions": DEEP}, "dimensions.a.a", id="dimensions"),
    ],
)
def test_deep_embeddings_input_is_refused(gw: Gateway, body: dict[str, Any], param: str) -> None:
    refused(gw, send(gw, "/v1/embeddings", body), param, "nesting_too_deep")
    healthy(gw)


def test_deep_metadata_header_is_refused(gw: Gateway) -> None:
    r = send(gw, "/chat/completions", {"model": "chat-openai", "messages": USER},
             headers={"x-llmgw-metadata": json.dumps(DEEP)})  # fmt: skip
    refused(gw, r, "x-llmgw-metadata", "nesting_too_deep")
    healthy(gw)


def test_deep_anthropic_request_is_refused(gw: Gateway) -> None:
    body = {"model": "chat-gemini", "max_tokens": 5, "messages": USER,
            "tools": [{"name": "t", "input_schema": DEEP}]}  # fmt: skip
    refused(gw, send(gw, "/v1/messages", body), "tools[0].input_schema")
    healthy(gw)


# -- types, for every translating provider kind ----------------------------------------------------
TYPES = [
    pytest.param({"stop": 5}, "stop", id="stop"),
    pytest.param({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", id="content"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
                 "messages[0].content[0].text", id="part-text"),
    pytest.param({"messages": [{"role": "system", "content": {"a": 1}}, *USER]}, "messages[0].content", id="system"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
                 "messages[0].content[0].image_url", id="image-url"),
    pytest.param({"tools": ["x"]}, "tools[0]", id="tools"),
    pytest.param({"tools": [{"type": "function", "function": "f"}]}, "tools[0].function", id="tool-function"),
    pytest.param({"tool_choice": ["auto"]}, "tool_choice", id="tool-choice"),
    pytest.param({"response_format": "json"}, "response_format", id="response-format"),
    pytest.param({"max_tokens": "5"}, "max_tokens", id="max-tokens"),
    pytest.param({"user": 5}, "user", id="user"),
    pytest.param({"messages": [*USER, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
        "messages[1].tool_calls[0].function.arguments", id="arguments"),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
@pytest.mark.parametrize(("fields", "param"), TYPES)
def test_a_wrong_type_is_a_400_naming_it(gw: Gateway, kind: str, fields: dict[str, Any], param: str) -> None:
    if param == "user" and kind == "gemini":
        pytest.skip("gemini drops `user`")
    body = {"model": f"chat-{kind}", "messages": USER, **fields}
    r = send(gw, "/v1/chat/completions", body)
    refused(gw, r, param)
    assert r.json()["error"]["param"] == param


def test_gemini_embeddings_check_types(gw: Gateway) -> None:
    refused(gw, send(gw, "/v1/embeddings", {"model": "emb-gemini", "input": "x", "dimensions": "3"}), "dimensions")


def test_a_gemini_schema_of_the_wrong_shape_does_not_fail(gw: Gateway) -> None:
    params = {"type": "object", "properties": {"c": {"type": "string", "format": ["x"]}}, "$defs": [1]}
    tools = [{"type": "function", "function": {"name": "f", "parameters": params}}]
    r = send(gw, "/v1/chat/completions", {"model": "chat-gemini", "messages": USER, "tools": tools})
    assert r.status_code == 200, r.text
    assert logged(gw, r)["status"] == 200


@pytest.mark.parametrize(
    ("content", "param"),
    [
        pytest.param([{"type": "image", "source": "x"}], "messages.0.content.0.source", id="source"),
        pytest.param([{"type": "text", "text": 5}], "messages.0.content.0.text", id="text"),
        pytest.param(5, "messages.0.content", id="content"),
    ],
)
def test_anthropic_inbound_checks_types(gw: Gateway, content: Any, param: str) -> None:
    body = {"model": "chat-openai", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}
    refused(gw, send(gw, "/v1/messages", body), param)


def test_anthropic_inbound_tool_use_input_must_be_an_object(gw: Gateway) -> None:
    turns = [*USER, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": 5}]}]
    body = {"model": "chat-anthropic", "max_tokens": 5, "messages": turns}
    refused(gw, send(gw, "/v1/messages", body), "messages.1.content.0.input")
    healthy(gw)
