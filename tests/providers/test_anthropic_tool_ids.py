"""A conversation whose tool calls came from another provider reaches an Anthropic target with
tool ids Anthropic accepts.

Anthropic refuses a ``tool_use.id`` / ``tool_result.tool_use_id`` outside ``^[a-zA-Z0-9_-]+$``
(a 400); OpenAI-compatible servers use other ids — Moonshot's Kimi ``functions.get_weather:0``,
others with dots or colons. An application that sends such a history (its earlier turns served
by that server, the next one by the route's Anthropic target, or after a fallback) got the
provider's 400 through the openai SDK. The ids are now mapped, the same for a call and its
result. Real `llmgw serve`, the strict Anthropic fake over real HTTP, the official openai SDK.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from conftest import UPSTREAM_KEY, Gateway
from fake_anthropic import FakeAnthropic

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip


def history(*ids: str) -> list[dict]:
    """A user question, one assistant turn calling the tool once per id, and the results."""
    calls = [{"id": i, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
             for i in ids]  # fmt: skip
    results = [{"role": "tool", "tool_call_id": i, "content": f"sunny ({n})"} for n, i in enumerate(ids)]
    return [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *results,
    ]


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(UPSTREAM_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(claude: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    provider = {"kind": "anthropic", "base_url": claude.base_url, "api_key_env": "LOCAL_API_KEY"}
    policy = {
        "providers": {"claude": provider},
        "routes": {"claude": {"targets": [{"provider": "claude", "model": "claude-tool"}]}},
    }
    gateway = Gateway(tmp_path_factory.mktemp("tool-ids"), policy)
    yield gateway
    gateway.terminate()


@pytest.mark.parametrize("stream", [False, True])
def test_foreign_tool_ids_reach_anthropic_paired(gw: Gateway, claude: FakeAnthropic, stream: bool) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    ids = ("functions.get_weather:0", "functions.get_weather:1", "call_plain-01")
    answer = client.chat.completions.create(model="claude", messages=history(*ids), tools=TOOLS, stream=stream)  # type: ignore[call-overload]
    text = (
        "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        if stream
        else answer.choices[0].message.content
    )
    assert text == "The tool said: sunny (0)", text
    assert not claude.invalid, claude.invalid
    sent = claude.requests[-1]["body"]["messages"]
    uses = [b["id"] for b in sent[1]["content"]]
    results = [b["tool_use_id"] for b in sent[2]["content"]]
    assert uses == results and len(set(uses)) == 3 and uses[2] == "call_plain-01"  # paired, distinct, valid ones kept
