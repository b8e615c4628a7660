"""``POST /v1/messages/count_tokens`` through a real `llmgw serve`, with the official anthropic
SDK: answered by the gateway itself (no upstream is called: the anthropic provider points at a
closed port), exact for OpenAI tokenizers, marked as an estimate otherwise."""

from __future__ import annotations

import anthropic
import bpe_openai
import httpx
import pytest
from conftest import Gateway, free_port, policy_for

PROVIDER_KEY = "sk-ant-provider-0123456789abcdefghij"
MESSAGES = [{"role": "user", "content": "How many tokens is this sentence, exactly?"}]
SYSTEM = "You are a careful counter."


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    policy = policy_for(upstream.base_url)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: counting must not call it
    policy["providers"]["claude"] = {"kind": "anthropic", "base_url": closed, "api_key_env": "ANT_KEY"}
    policy["routes"]["claude"] = {"targets": [{"provider": "claude", "model": "claude-sonnet-4"}]}
    policy["routes"]["gpt-4"] = {"targets": [{"provider": "local", "model": "gpt-4-turbo"}]}
    g = Gateway(tmp_path_factory.mktemp("count"), policy, env={"ANT_KEY": PROVIDER_KEY})
    yield g
    g.terminate()


def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="vk-any", max_retries=0)


def chat_tokens(encoding: str, messages: list[dict]) -> int:
    """OpenAI's documented chat count: 3 per message + role + content, 3 to prime the reply."""
    enc = bpe_openai.get_encoding(encoding)
    return 3 + sum(3 + len(enc.encode_ordinary(m["role"])) + len(enc.encode_ordinary(m["content"])) for m in messages)


@pytest.mark.parametrize(("route", "encoding"), [("gpt-4o-mini", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_exact_for_openai_tokenizers(gw, upstream, route, encoding):
    before = len(upstream.requests)
    raw = client(gw).messages.with_raw_response.count_tokens(model=route, system=SYSTEM, messages=MESSAGES)
    counted = raw.parse()
    expected = chat_tokens(encoding, [{"role": "system", "content": SYSTEM}, *MESSAGES])
    assert counted.input_tokens == expected
    assert raw.headers["x-llmgw-token-count"] == "exact"
    extra = counted.model_extra or {}
    assert extra["estimated"] is False and extra["tokenizer"] == encoding
    assert raw.headers["x-request-id"].startswith("req_")
    assert len(upstream.requests) == before  # answered by the gateway


@pytest.mark.parametrize(("route", "model"), [("claude", "claude-sonnet-4"), ("demo", "demo-echo")])
def test_estimate_for_other_models(gw, route, model):
    raw = client(gw).messages.with_raw_response.count_tokens(model=route, messages=MESSAGES)
    counted = raw.parse()
    text = MESSAGES[0]
    expected = 3 + 3 + -(-len(text["role"]) // 4) + -(-len(text["content"]) // 4)  # chars / 4, rounded up
    assert counted.input_tokens == expected
    assert raw.headers["x-llmgw-token-count"] == "estimate"
    assert counted.model_extra == {"estimated": True, "tokenizer": "chars/4", "model": model}


def test_thinking_configures_the_answer_and_is_not_refused(gw):
    plain = client(gw).messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    assert client(gw).messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES, thinking=thinking) == plain


def test_tools_are_counted_and_make_it_an_estimate(gw):
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]  # fmt: skip
    plain = client(gw).messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES)
    with_tools = client(gw).messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES, tools=tools)
    assert with_tools.input_tokens > plain.input_tokens + 10
    assert (with_tools.model_extra or {})["estimated"] is True


def test_errors_are_anthropic_errors(gw):
    with pytest.raises(anthropic.NotFoundError) as nf:
        client(gw).messages.count_tokens(model="no-such-route", messages=MESSAGES)
    assert nf.value.body["error"]["type"] == "not_found_error" and "no-such-route" in nf.value.message
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(gw).messages.count_tokens(model="demo", messages=[{"role": "user", "content": 5}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "messages.0.content" in bad.value.message
    r = httpx.post(f"{gw.url}/v1/messages/count_tokens", content=b"[1,")
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = httpx.get(f"{gw.url}/v1/messages/count_tokens")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_virtual_keys_guard_counting_and_responses(upstream, tmp_path):
    """With keys enforced: no key → 401, a key not allowed the route → 403 (Anthropic's format
    for count_tokens, OpenAI's for /v1/responses), an allowed key → served."""
    import sys
    from pathlib import Path

    import openai

    sys.path.insert(0, str(Path(__file__).parents[1] / "keys"))
    from keyed_gateway import ADMIN_TOKEN, KeyedGateway

    g = KeyedGateway(tmp_path, policy_for(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        key, _ = g.create_key(name="narrow", models=["demo"])
        anon = anthropic.Anthropic(base_url=g.url, api_key="vk-not-a-key", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            anon.messages.count_tokens(model="demo", messages=MESSAGES)
        narrow = anthropic.Anthropic(base_url=g.url, api_key=key, max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            narrow.messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES)
        assert denied.value.body["error"]["type"] == "permission_error"
        assert narrow.messages.count_tokens(model="demo", messages=MESSAGES).input_tokens > 0
        oai = openai.OpenAI(base_url=g.base_url, api_key=key, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError):
            oai.responses.create(model="gpt-4o-mini", input="hi")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=g.base_url, api_key="vk-nope", max_retries=0).responses.create(
                model="demo", input="x"
            )
        assert oai.responses.create(model="demo", input="hi").output_text == "[llmgw demo] You said: hi"
    finally:
        g.terminate()
