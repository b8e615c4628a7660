"""What the official SDKs expose of an upstream's error reaches the application through the
gateway: ``exc.code`` and ``exc.param`` of an ``openai.APIStatusError``.

Applications branch on them — the classic is ``exc.code == "context_length_exceeded"`` to trim
the conversation and ask again. Before, every upstream 4xx/5xx reached the client with the
gateway's ``code: upstream_<status>`` and ``param: null``: the same request sent directly to the
provider gave ``context_length_exceeded`` / ``messages``. An OpenAI-format provider's own
``code`` and ``param`` are now passed on (as identifiers, scrubbed of keys: ``echo-key`` in
test_conformance puts the key in both), and a translated provider's context-window 400
(Anthropic's ``prompt is too long``) gets OpenAI's ``context_length_exceeded``.
Real `llmgw serve`, the strict fakes over real HTTP, the official openai SDK.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from conftest import UPSTREAM_KEY, Gateway, policy_for
from fake_anthropic import FakeAnthropic
from fake_openai import FakeOpenAI

USER = [{"role": "user", "content": "a very long conversation"}]
STREAM = [pytest.param(False, id="json"), pytest.param(True, id="stream")]


@pytest.fixture(scope="module")
def gw(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    claude = FakeAnthropic(UPSTREAM_KEY).start()
    policy = policy_for(upstream.base_url)
    policy["providers"]["claude"] = {"kind": "anthropic", "base_url": claude.base_url, "api_key_env": "LOCAL_API_KEY"}
    policy["routes"].update({
        "small": {"targets": [{"provider": "local", "model": "context-small"}]},
        "claude-small": {"targets": [{"provider": "claude", "model": "claude-too-long"}]},
    })  # fmt: skip
    gateway = Gateway(tmp_path_factory.mktemp("sdk-errors"), policy)
    yield gateway
    gateway.terminate()
    claude.stop()
    assert not claude.invalid, claude.invalid


def _error(base_url: str, route: str, stream: bool, key: str = "vk-any") -> openai.BadRequestError:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        answer = client.chat.completions.create(model=route, messages=USER, stream=stream)  # type: ignore[call-overload]
        list(answer) if stream else None
    return exc.value


@pytest.mark.parametrize("stream", STREAM)
def test_the_openai_upstreams_code_and_param_reach_the_sdk(gw: Gateway, upstream: FakeOpenAI, stream: bool) -> None:
    direct = _error(upstream.base_url, "context-small", stream, UPSTREAM_KEY)  # the reference: no gateway
    err = _error(gw.base_url, "small", stream)
    assert (err.code, err.param) == (direct.code, direct.param) == ("context_length_exceeded", "messages"), err.body
    assert direct.body["message"] in err.body["message"]  # type: ignore[index]


@pytest.mark.parametrize("stream", STREAM)
def test_an_anthropic_context_window_error_is_context_length_exceeded(gw: Gateway, stream: bool) -> None:
    err = _error(gw.base_url, "claude-small", stream)
    assert err.code == "context_length_exceeded", err.body
    assert "prompt is too long" in err.message


def test_an_error_without_a_provider_code_keeps_the_gateways(gw: Gateway) -> None:
    err = _error(gw.base_url, "broken-400", False)
    assert (err.code, err.param) == ("upstream_400", None), err.body
