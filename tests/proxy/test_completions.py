"""``POST /v1/completions`` (legacy text completions) through a real `llmgw serve`, with the
official openai SDK's ``client.completions.create`` (JSON and stream), passed through to an
OpenAI-format target (fake_openai's ``/v1/completions``; more in ``test_passthrough.py``),
translated to chat for an Anthropic target (fake_anthropic, strict) and the demo provider;
refused fields are 400s naming them; the log row is a chat row with ``api='completions'``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import openai
import pytest
from conftest import Gateway, policy_for, wait_for_rows

sys.path.insert(0, str(Path(__file__).parent.parent))
from fake_anthropic import FakeAnthropic  # noqa: E402

PROVIDER_KEY = "sk-ant-provider-0123456789abcdefghij"
# route -> (the answer to "Say hi", prompt tokens, completion tokens)
ANSWERS = {
    "gpt-4o-mini": ("Hello from the fake upstream: Say hi", 11, 7),
    "claude": ("Claude heard: Say hi", 25, 9),  # 21 input + 4 cache read
    "demo": ("[llmgw demo] You said: Say hi", 2, 6),
}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    fake = FakeAnthropic(PROVIDER_KEY).start()
    policy = policy_for(upstream.base_url)
    policy["providers"]["claude"] = {"kind": "anthropic", "base_url": fake.base_url, "api_key_env": "ANT_KEY"}
    policy["routes"]["claude"] = {"targets": [{"provider": "claude", "model": "claude-sonnet"}]}
    g = Gateway(tmp_path_factory.mktemp("completions"), policy, env={"ANT_KEY": PROVIDER_KEY})
    g.fake = fake  # type: ignore[attr-defined]
    yield g
    g.terminate()
    fake.stop()


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)


@pytest.mark.parametrize("route", list(ANSWERS))
def test_json_answer(gw, route):
    raw = client(gw).completions.with_raw_response.create(model=route, prompt="Say hi", max_tokens=50)
    r = raw.parse()
    text, prompt, completion = ANSWERS[route]
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert [(c.text, c.index, c.finish_reason) for c in r.choices] == [(text, 0, "stop")]
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
    row = wait_for_rows(gw, f"request_id = '{raw.headers['x-llmgw-request-id']}'")[0]
    assert (row["api"], row["endpoint"], row["route"], row["outcome"]) == (
        "completions",
        "chat.completions",
        route,
        "ok",
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)


@pytest.mark.parametrize("route", list(ANSWERS))
def test_stream(gw, route):
    chunks = list(client(gw).completions.create(model=route, prompt="Say hi", stream=True,
                                                stream_options={"include_usage": True}))  # fmt: skip
    text, prompt, completion = ANSWERS[route]
    assert {c.object for c in chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        prompt, completion)  # fmt: skip


def test_the_log_keeps_the_chat_form_with_openais_default_max_tokens(gw, upstream):
    raw = client(gw).completions.with_raw_response.create(
        model="gpt-4o-mini", prompt=["Say hi"], temperature=0.2, stop=["\n"]
    )
    sent = upstream.requests[-1]  # an openai target: the body as the client sent it
    assert sent["path"] == "/v1/completions" and sent["body"]["prompt"] == ["Say hi"]
    assert "max_tokens" not in sent["body"]
    logged = wait_for_rows(gw, f"request_id = '{raw.headers['x-llmgw-request-id']}'")[0]["request_body"]
    chat = json.loads(logged)  # what limits reserve for, the cache keys and replay reads
    assert chat["messages"] == [{"role": "user", "content": "Say hi"}]
    assert (chat["max_tokens"], chat["temperature"], chat["stop"]) == (16, 0.2, ["\n"])


@pytest.mark.parametrize(("fields", "param"), [
    ({"suffix": "end"}, "suffix"),
    ({"echo": True}, "echo"),
    ({"logprobs": 2}, "logprobs"),
    ({"best_of": 3}, "best_of"),
    ({"prompt": [1, 2, 3]}, "prompt[0]"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"temperature": "hot"}, "temperature"),
    ({"frobnicate": 1}, "frobnicate"),
])  # fmt: skip
def test_refused_and_invalid_fields_are_400s_naming_them(gw, fields, param):
    body = {"model": "demo", "prompt": "Say hi", **fields}
    r = httpx.post(f"{gw.base_url}/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_noop_values_of_refused_fields_are_accepted(gw):
    r = client(gw).completions.create(model="demo", prompt="Say hi", echo=False, best_of=1, suffix=None)
    assert r.choices[0].text == ANSWERS["demo"][0]


def test_unversioned_alias_and_upstream_errors_keep_openai_format(gw):
    r = httpx.post(f"{gw.url}/completions", json={"model": "demo", "prompt": "Say hi"})
    assert r.status_code == 200 and r.json()["object"] == "text_completion"
    with pytest.raises(openai.InternalServerError) as exc:
        client(gw).completions.create(model="broken-500", prompt="x")
    assert exc.value.body["code"] == "upstream_500"
