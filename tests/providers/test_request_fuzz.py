"""In process and fast: whatever a client sends, the request side of every translation — parse,
validation, the Anthropic inbound translation, the native adapters' request bodies, the prompt
bound of the budget reservation — ends in a value or a 400-kind error naming a parameter, never
in another exception (the fuzz suite's generator, tests/fuzzgen.py; end to end:
tests/proxy/test_fuzz.py). And the shape table's own behaviour.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fuzzgen import PIPELINE_PATHS, bodies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmgw_kernel.decisions.limits import prompt_upper_bound
from llmgw_kernel.policy.model import Target
from llmgw_kernel.providers.anthropic import AnthropicAdapter
from llmgw_kernel.providers.base import UpstreamError
from llmgw_kernel.providers.engine import REQUEST_SHAPES, STRINGS, NativeAdapter, Shape, shape_error
from llmgw_kernel.providers.gemini import GeminiAdapter
from llmgw_kernel.proxy.anthropic_request import to_openai_request
from llmgw_kernel.proxy.errors import GatewayError
from llmgw_kernel.proxy.validate import check_chat, check_embeddings, check_model, load_json

TARGET = Target(provider="p", model="m")
ADAPTERS: list[NativeAdapter] = [cls.__new__(cls) for cls in (AnthropicAdapter, GeminiAdapter)]  # request side only


def serve_request_side(path: str, raw: bytes) -> None:
    body: Any = load_json(raw)
    if path == "/v1/messages":
        body = to_openai_request(body)
    check_model(body)
    if "embeddings" in path:
        check_embeddings(body)
    else:
        check_chat(body)
    body.pop("metadata", None)
    prompt_upper_bound(body)
    orjson.dumps(body)
    for adapter in ADAPTERS:
        try:
            adapter.request_body(dict(body), TARGET, stream=bool(body.get("stream")))
        except UpstreamError as err:
            assert err.kind == "unsupported" and err.param, err


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=st.sampled_from(PIPELINE_PATHS).flatmap(lambda p: st.tuples(st.just(p), bodies(p))))
def test_the_request_side_never_fails_on_client_input(case: tuple[str, tuple[bytes, list[str]]]) -> None:  # fmt: skip
    path, (raw, _) = case
    try:
        serve_request_side(path, raw)
    except GatewayError as err:
        assert 400 <= err.status < 500, err


@pytest.mark.parametrize(
    ("value", "misfit"),
    [
        ("x", None),
        (["a", "b"], None),
        (5, ("stop", "a number")),
        ([None], ("stop[0]", "null")),
        (["a", {"b": 1}], ("stop[1]", "an object")),
        (True, ("stop", "a boolean")),
    ],
)
def test_shape_error_names_the_first_misfit(value: Any, misfit: tuple[str, str] | None) -> None:
    err = shape_error(value, STRINGS, "stop")
    assert (None if err is None else (err.param, err.got)) == misfit


def test_an_int_is_not_a_boolean_and_a_boolean_is_not_a_number() -> None:
    assert shape_error(True, REQUEST_SHAPES["max_tokens"], "max_tokens") is not None
    assert shape_error(1, REQUEST_SHAPES["parallel_tool_calls"], "p") is not None
    assert shape_error(1, REQUEST_SHAPES["temperature"], "t") is None
    assert shape_error(0.5, REQUEST_SHAPES["temperature"], "t") is None


def test_null_keys_are_unset_and_unknown_keys_unchecked() -> None:
    msg = {"role": "user", "content": None, "tool_calls": None, "whatever": {"x": [1]}}
    assert shape_error([msg], REQUEST_SHAPES["messages"], "messages") is None


def test_anthropic_style_paths() -> None:
    shape = Shape((list,), "an array", items=Shape((dict,), "an object", keys={"text": REQUEST_SHAPES["user"]}))
    err = shape_error([{"text": "a"}, {"text": 1}], shape, "content", ".{}")
    assert err is not None and err.param == "content.1.text" and err.expected == "a string"
