"""A provider's ``Retry-After`` on the 429/503 the client gets reaches the SDKs, which wait that
long before they retry — as they do against the provider directly.

Before, the gateway honoured the header for its own retries but answered the client without it:
``exc.response.headers["retry-after"]`` was missing (the provider sent it), and the openai
SDK's automatic retry came after its own ~0.5 s backoff instead of the 1 s the provider asked
for. Real `llmgw serve`, the strict fakes over real HTTP, the official openai and anthropic SDKs.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from conftest import UPSTREAM_KEY, Gateway, policy_for
from fake_anthropic import FakeAnthropic
from fake_openai import FakeOpenAI

USER = [{"role": "user", "content": "hello"}]
BUSY = "status-429-retry-after-1-sdk"  # the fake's 429 with Retry-After: 1 (a name of its own: the fake is shared)


@pytest.fixture(scope="module")
def gw(upstream: FakeOpenAI, claude: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policy = policy_for(upstream.base_url)
    policy["providers"]["claude"] = {"kind": "anthropic", "base_url": claude.base_url, "api_key_env": "LOCAL_API_KEY"}
    policy["routes"].update({
        "busy": {"targets": [{"provider": "local", "model": BUSY}]},
        "claude-busy": {"targets": [{"provider": "claude", "model": "claude-rate-limited"}]},
    })  # fmt: skip
    gateway = Gateway(tmp_path_factory.mktemp("retry-after"), policy)
    yield gateway
    gateway.terminate()


def _openai_429(base_url: str, route: str, key: str) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as exc:
        openai.OpenAI(base_url=base_url, api_key=key, max_retries=0).chat.completions.create(model=route, messages=USER)
    return exc.value


def test_the_openai_sdk_sees_the_providers_retry_after(gw: Gateway, upstream: FakeOpenAI) -> None:
    direct = _openai_429(upstream.base_url, BUSY, UPSTREAM_KEY)  # the reference: no gateway
    err = _openai_429(gw.base_url, "busy", "vk-any")
    assert err.response.headers.get("retry-after") == direct.response.headers["retry-after"] == "1"


def test_the_openai_sdk_waits_as_the_provider_asked(gw: Gateway, upstream: FakeOpenAI) -> None:
    seen = len(upstream.requests)
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=1).chat.completions.create(
            model="busy", messages=USER
        )
    tries = [r["t"] for r in upstream.requests[seen:] if r["body"].get("model") == BUSY]
    assert len(tries) == 2, "the SDK's one retry reached the provider through the gateway"
    assert tries[1] - tries[0] >= 0.95, f"the SDK retried {tries[1] - tries[0]:.2f} s later, not after Retry-After: 1"


def test_the_anthropic_sdk_sees_the_providers_retry_after(gw: Gateway, claude: FakeAnthropic) -> None:
    direct_client = anthropic.Anthropic(
        base_url=claude.base_url, api_key=None, default_headers={"x-api-key": UPSTREAM_KEY}, max_retries=0
    )  # the reference: the fake wants x-api-key, which this SDK sends only when told
    with pytest.raises(anthropic.RateLimitError) as direct:
        direct_client.messages.create(model="claude-rate-limited", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    client = anthropic.Anthropic(base_url=gw.url, api_key="vk-any", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="claude-busy", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert exc.value.response.headers.get("retry-after") == direct.value.response.headers["retry-after"] == "2"
