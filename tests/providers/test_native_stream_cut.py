"""A native provider's stream that ends before the provider said why it ended was cut: the SDKs'
stream helpers must raise, never hand the application a truncated answer as a whole one.

An Anthropic stream ends with ``message_delta`` (its ``stop_reason``) and ``message_stop``; a
Gemini stream with a chunk carrying each candidate's ``finishReason``. When the HTTP response
ended cleanly before that (a proxy or a ``Connection: close`` upstream cutting it short), the
translators used to close the answer with a ``finish_reason: stop`` of their own: the openai
SDK's ``chat.completions.stream(...).get_final_completion()`` returned the first words with
``finish_reason == "stop"``, the anthropic SDK's ``messages.stream`` through ``/v1/messages``
``stop_reason == "end_turn"`` (directly against the provider it says ``None``), and the log
row said ``ok``. Now it is the upstream fault it is (docs/providers.md): the stream ends with
the gateway's error, which both helpers raise, and the row says ``upstream_error``.
Real `llmgw serve`, the strict fakes over real HTTP (``claude-stream-ends``,
``gemini-stream-ends``), the official SDKs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anthropic
import openai
import pytest
from conftest import UPSTREAM_KEY, Gateway, wait_for_rows
from fake_anthropic import FakeAnthropic
from fake_gemini import FakeGemini

USER = [{"role": "user", "content": "one two three four five"}]
ROUTES = [pytest.param("claude-ends", id="anthropic"), pytest.param("gemini-ends", id="gemini")]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    claude, gemini = FakeAnthropic(UPSTREAM_KEY).start(), FakeGemini(UPSTREAM_KEY).start()
    policy = {
        "providers": {
            "claude": {"kind": "anthropic", "base_url": claude.base_url, "api_key_env": "LOCAL_API_KEY"},
            "gemini": {"kind": "gemini", "base_url": gemini.base_url, "api_key_env": "LOCAL_API_KEY"},
        },
        "routes": {
            "claude-ends": {"targets": [{"provider": "claude", "model": "claude-stream-ends"}]},
            "gemini-ends": {"targets": [{"provider": "gemini", "model": "gemini-stream-ends"}]},
        },
        "log": {"flush_ms": 100},
    }
    gateway = Gateway(tmp_path_factory.mktemp("native-cut"), policy)
    yield gateway
    gateway.terminate()
    for fake in (claude, gemini):
        fake.stop()
        assert not fake.invalid, fake.invalid


def _row(gw: Gateway, rid: str) -> dict:
    return wait_for_rows(gw, f"client_request_id = '{rid}'")[0]  # the x-request-id the client sent


@pytest.mark.parametrize("route", ROUTES)
def test_the_openai_stream_helper_raises(gw: Gateway, route: str) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)
    rid = f"cut-{uuid.uuid4().hex[:12]}"
    texts: list[str] = []
    stream = client.chat.completions.stream(model=route, messages=USER, extra_headers={"x-request-id": rid})
    with pytest.raises(openai.APIError) as exc, stream as s:
        texts.extend(e.delta for e in s if e.type == "content.delta")
        final = s.get_final_completion()
        pytest.fail(f"a cut stream passed for whole: {final.choices[0]}")
    assert texts, "the first words did reach the client (the cut came after the first byte)"
    assert "stream ended without" in exc.value.message
    row = _row(gw, rid)
    assert (row["outcome"], row["error_type"]) == ("upstream_error", "upstream_unreachable"), row


def test_the_anthropic_stream_helper_raises(gw: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key="vk-any", max_retries=0)
    rid = f"cut-{uuid.uuid4().hex[:12]}"
    stream = client.messages.stream(
        model="claude-ends", max_tokens=50, messages=USER, extra_headers={"x-request-id": rid}
    )
    with pytest.raises(anthropic.APIStatusError) as exc, stream as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
        pytest.fail(f"a cut stream passed for whole: {text!r}, stop_reason {final.stop_reason}")
    assert "stream ended without" in str(exc.value)
    assert _row(gw, rid)["outcome"] == "upstream_error"
