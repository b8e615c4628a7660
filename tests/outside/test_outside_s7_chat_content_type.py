"""Outside-style: a chat message whose `content` is neither a string, an array of content parts nor null.

OpenAI answers `{"role": "user", "content": {"a": 1}}` (or `5`, `true`, `[1]`) with a 400
invalid_request_error naming `messages[0].content` (code invalid_type). By hand: the gateway passed
such a message to the upstream, which here answered 200 with the object's Python repr as its prompt
(a real provider's 400 comes back as `upstream_400` after a round trip and an upstream attempt, a
provider that accepts it serves a prompt nobody wrote). /v1/messages already refuses it in
Anthropic's format. The refusal is the gateway's own 400 in OpenAI's format, never reaches the
upstream, and the request is in the log exactly once.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import UPSTREAM_KEY, wait_for_rows

BAD = [{"a": 1}, 5, 2.5, True, [1], ["hi"], [{"type": "text", "text": "ok"}, 7]]


@pytest.mark.parametrize("content", BAD, ids=lambda c: repr(c))
def test_chat_content_of_a_wrong_type_is_openai_400(gateway, upstream, content) -> None:
    before = upstream.counts["gpt-4o-mini"]
    client = openai.OpenAI(base_url=gateway.base_url, api_key=UPSTREAM_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])  # type: ignore[misc, list-item]
    err = caught.value
    assert err.status_code == 400
    body = err.body if isinstance(err.body, dict) else {}
    assert body.get("type") == "invalid_request_error", err.body
    assert (body.get("param") or "").startswith("messages[0].content"), err.body
    assert body.get("code") == "invalid_type", err.body
    assert upstream.counts["gpt-4o-mini"] == before, "the upstream was asked"
    rid = err.response.headers["x-request-id"]
    assert len(wait_for_rows(gateway, f"request_id = '{rid}'")) == 1


def test_valid_contents_still_pass(gateway) -> None:
    for content in ("hi", [{"type": "text", "text": "hi"}]):
        r = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    # an assistant turn with tool calls and no content is OpenAI's own shape
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip
    r = httpx.post(
        f"{gateway.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": messages}, timeout=30
    )
    assert r.status_code == 200, r.text
