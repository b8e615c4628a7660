"""A streamed Anthropic tool call whose input does not come in ``input_json_delta`` fragments
keeps its arguments through the gateway.

Anthropic streams a call to a tool without parameters as ``content_block_start`` (``input:
{}``) and one ``input_json_delta`` of ``""``; some Anthropic-compatible servers send the whole
``input`` in ``content_block_start`` and no delta. The translation read arguments only from the
deltas: the first gave the openai SDK ``arguments == ""`` (its stream helper, with a strict
pydantic tool, raised ``ValidationError: Invalid JSON: EOF``; the same call unstreamed gave
``"{}"``), the second lost the arguments (``""`` for openai clients, ``input: {}`` for anthropic
clients through ``/v1/messages``; the anthropic SDK straight against the server reads
``{"city": "Paris"}``). Real `llmgw serve`, the strict Anthropic fake over real HTTP
(``claude-tool``, ``claude-tool-whole``), the official SDKs.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pydantic
import pytest
from conftest import UPSTREAM_KEY, Gateway
from fake_anthropic import FakeAnthropic

USER = [{"role": "user", "content": "what now?"}]


class Now(pydantic.BaseModel):
    pass


class Weather(pydantic.BaseModel):
    city: str


CASES = [  # (route, the tool, the arguments the call carries)
    pytest.param("claude-tool", Now, {}, id="no-parameters"),
    pytest.param("claude-tool-whole", Weather, {"city": "Paris"}, id="whole-input-at-start"),
]


@pytest.fixture(scope="module")
def gw(claude: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    provider = {"kind": "anthropic", "base_url": claude.base_url, "api_key_env": "LOCAL_API_KEY"}
    routes = {m: {"targets": [{"provider": "claude", "model": m}]} for m in ("claude-tool", "claude-tool-whole")}
    gateway = Gateway(tmp_path_factory.mktemp("tool-input"), {"providers": {"claude": provider}, "routes": routes})
    yield gateway
    gateway.terminate()


def _anthropic_tool(model: type[pydantic.BaseModel]) -> dict:
    name = "now" if model is Now else "get_weather"
    return {"name": name, "description": "a tool", "input_schema": model.model_json_schema()}


@pytest.mark.parametrize(("route", "model", "args"), CASES)
def test_the_openai_stream_helper_parses_the_call(gw: Gateway, route: str, model: type, args: dict) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    tool = openai.pydantic_function_tool(model, name="now" if model is Now else "get_weather")
    with client.chat.completions.stream(model=route, messages=USER, tools=[tool]) as s:  # type: ignore[arg-type]
        for _ in s:
            pass
        streamed = s.get_final_completion().choices[0].message.tool_calls
    whole = client.chat.completions.create(model=route, messages=USER, tools=[tool]).choices[0].message.tool_calls  # type: ignore[arg-type]
    assert streamed and whole and streamed[0].function.parsed_arguments == model(**args)
    assert streamed[0].function.arguments.replace(" ", "") == whole[0].function.arguments.replace(" ", "")


@pytest.mark.parametrize(("route", "model", "args"), CASES)
def test_the_anthropic_stream_helper_gets_the_input(
    gw: Gateway, claude: FakeAnthropic, route: str, model: type, args: dict
) -> None:
    direct = anthropic.Anthropic(
        base_url=claude.base_url, api_key=None, default_headers={"x-api-key": UPSTREAM_KEY}, max_retries=0
    )  # the reference: the fake wants x-api-key, which this SDK sends only when told
    client = anthropic.Anthropic(base_url=gw.url, api_key="vk-any", max_retries=0)
    inputs = []
    for c in (direct, client):
        with c.messages.stream(model=route, max_tokens=50, messages=USER, tools=[_anthropic_tool(model)]) as s:  # type: ignore[list-item]
            inputs.append([b.input for b in s.get_final_message().content if b.type == "tool_use"])
    assert inputs[1] == inputs[0] == [args]


def test_json_mode_keeps_an_input_sent_at_the_start(gw: Gateway) -> None:
    """JSON mode on an Anthropic target is a forced tool whose input is the answer's content:
    sent whole in ``content_block_start``, it was streamed as ``""`` (the parse raised)."""
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    with client.chat.completions.stream(model="claude-tool-whole", messages=USER, response_format=Weather) as s:
        for _ in s:
            pass
        streamed = s.get_final_completion().choices[0].message
    whole = client.chat.completions.parse(model="claude-tool-whole", messages=USER, response_format=Weather)
    assert streamed.parsed == whole.choices[0].message.parsed == Weather(city="Paris")
