"""An application that points ``openai.AzureOpenAI`` at the gateway gets an error it can read.

The Azure client sends ``/openai/deployments/{model}/chat/completions?api-version=...``; the
gateway serves the OpenAI paths only. Those paths went to the dashboards, whose HTML 404 page
became the SDK's error body (or, with protected dashboards, a 401 asking for the dashboard
password). Now they are API paths: the JSON 404 names the routes the gateway serves.
Real `llmgw serve` with its dashboards (conftest's Gateway), the official openai SDK.
"""

from __future__ import annotations

import openai
import pytest
from conftest import Gateway


def test_the_azure_client_gets_a_json_404_naming_the_routes(gateway: Gateway) -> None:
    client = openai.AzureOpenAI(azure_endpoint=gateway.url, api_key="vk-any", api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    body = exc.value.body
    assert isinstance(body, dict) and body.get("code") == "not_found", body
    assert "/openai/deployments/gpt-4o-mini/chat/completions" in body["message"]
    assert "POST /v1/chat/completions" in body["message"]
