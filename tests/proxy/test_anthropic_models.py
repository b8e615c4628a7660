"""``GET /v1/models`` as the anthropic SDK reads it: Anthropic's ``ModelInfo`` shape for a
client that sends ``anthropic-version`` (the anthropic SDK always does), OpenAI's otherwise.

Before, the anthropic SDK's ``client.models.list()`` / ``.retrieve()`` got OpenAI model objects
and, building its models without validation, handed the application ``type``,
``display_name`` and ``created_at`` of ``None`` (``m.display_name.lower()`` raised), and a
missing model's 404 had OpenAI's error body. Real `llmgw serve`, the official SDKs.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import anthropic
import openai
import pytest
from conftest import health_or_none, serve_demo, sigterm_and_wait, until

ROUTES = ("demo", "demo-large")
POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {r: {"targets": [{"provider": "demo", "model": "demo-echo"}]} for r in ROUTES},
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("anthropic-models")
    server, base = serve_demo(tmp, tmp / "data", POLICY)
    try:
        until("the gateway answers /health", lambda: health_or_none(base), timeout=120)
        yield base
    finally:
        sigterm_and_wait(server, 30)


def test_the_anthropic_sdk_lists_model_infos(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="vk-any", max_retries=0)
    page = client.models.list()
    assert [m.id for m in page] == list(ROUTES) and not page.has_more
    for m in page:
        assert (m.type, m.display_name) == ("model", m.id) and isinstance(m.created_at, datetime.datetime)
    one = client.models.retrieve("demo-large")
    assert (one.id, one.type, one.display_name) == ("demo-large", "model", "demo-large")


def test_a_missing_model_is_anthropics_not_found(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="vk-any", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.models.retrieve("nope")
    assert exc.value.body["error"]["type"] == "not_found_error", exc.value.body  # type: ignore[index]
    assert "nope" in exc.value.body["error"]["message"]  # type: ignore[index]


def test_openai_clients_keep_openais_shape(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="vk-any", max_retries=0)
    assert [(m.id, m.object, m.owned_by) for m in client.models.list()] == [(r, "model", "llmgw") for r in ROUTES]
    assert client.models.retrieve("demo").object == "model"
