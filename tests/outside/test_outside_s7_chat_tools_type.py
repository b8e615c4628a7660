"""Outside-style: chat `tools`, `messages[i].tool_calls` and `tool_choice` of the wrong JSON type.

OpenAI answers `"tools": [5]`, `"tools": [{"type": "function", "function": 5}]`, an assistant turn's
`"tool_calls": 5` (or `[5]`, or a call whose `function` is 5) and `"tool_choice": 5` with a 400
invalid_request_error naming the place. By hand (a fuzz of every route): the gateway passed each to
the upstream — the fake upstream crashed on four of them (`'int' object has no attribute 'get'`) and
the client got a 500 `upstream_500` for its own mistake; `tool_choice: 5` and a call's `function: 5`
were answered 200. Expected: the gateway's own 400 in OpenAI's format naming the parameter, the
upstream never asked, the request logged once.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import wait_for_rows

USER = {"role": "user", "content": "weather?"}
CASES = {
    "tools-item": ({"tools": [5]}, "tools[0]"),
    "tools-function": ({"tools": [{"type": "function", "function": 5}]}, "tools[0].function"),
    "tool_calls": ({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": 5}]}, "messages[1].tool_calls"),
    "tool_calls-item": ({"messages": [USER, {"role": "assistant", "tool_calls": [5]}]}, "messages[1].tool_calls[0]"),
    "tool_calls-function": (
        {"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": 5}]}]},
        "messages[1].tool_calls[0].function",
    ),
    "tool_choice": ({"tool_choice": 5}, "tool_choice"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_tools_of_a_wrong_type_are_openai_400(gateway, upstream, case: str) -> None:
    extra, param = CASES[case]
    before = upstream.counts["gpt-4o-mini"]
    body = {"model": "gpt-4o-mini", "messages": [USER], **extra}
    r = httpx.post(f"{gateway.base_url}/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["code"] == "invalid_type", err
    assert upstream.counts["gpt-4o-mini"] == before, "the upstream was asked"
    assert len(wait_for_rows(gateway, f"request_id = '{r.headers['x-request-id']}'")) == 1


def test_tools_openai_takes_still_pass(gateway) -> None:
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}
    for extra in (
        {"tools": [tool], "tool_choice": "auto"},
        {"tools": [tool], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
    ):
        body = {"model": "gpt-4o-mini", "messages": [USER], **extra}
        r = httpx.post(f"{gateway.base_url}/chat/completions", json=body, timeout=30)
        assert r.status_code == 200, r.text
