"""Provider kinds with their own fields and defaults: gemini's base URL, azure's api_version."""

from __future__ import annotations

import pytest

from llmgw_kernel import PolicyError, load_policy


def _policy(**provider) -> dict:
    return {"providers": {"p": provider}, "routes": {"m": {"targets": [{"provider": "p", "model": "x"}]}}}


def test_gemini_defaults_to_the_public_endpoint():
    policy = load_policy(_policy(kind="gemini", api_key_env="GEMINI_API_KEY"))
    assert policy.providers["p"].base_url == "https://generativelanguage.googleapis.com"


def test_azure_takes_an_endpoint_and_an_api_version():
    policy = load_policy(_policy(kind="azure", base_url="https://res.openai.azure.com/", api_version="2024-10-21"))
    assert (policy.providers["p"].base_url, policy.providers["p"].api_version) == (
        "https://res.openai.azure.com", "2024-10-21",
    )  # fmt: skip


@pytest.mark.parametrize(("provider", "fragment"), [
    ({"kind": "azure", "base_url": "https://res.openai.azure.com"}, "api_version is required for kind 'azure'"),
    ({"kind": "azure", "api_version": "2024-10-21"}, "base_url is required"),
    ({"kind": "openai", "base_url": "https://api.openai.com/v1", "api_version": "2024-10-21"}, "only used by kind 'azure'"),
])  # fmt: skip
def test_provider_field_errors_name_the_provider(provider, fragment):
    with pytest.raises(PolicyError) as exc:
        load_policy(_policy(**provider))
    assert any(p == "providers.p" and fragment in m for p, m in exc.value.errors), exc.value.errors
