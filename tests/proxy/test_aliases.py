"""The unversioned aliases (`/chat/completions`, `/embeddings`, `/models`, `/models/{id}`)
behave exactly like their `/v1/` twins — also on a server bound beyond loopback, where
dashboard paths need the dashboard token: the aliases are API paths, keys protect them.
The client is the openai SDK with ``base_url`` = the server's root (no `/v1`)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "keys"))
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, metered_policy  # noqa: E402

ALIASES = [
    ("POST", "/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ("GET", "/models", None),
    ("GET", "/models/gpt-4o-mini", None),
    ("GET", "/models/no-such-route", None),
]


@pytest.fixture(scope="module")
def beyond(upstream, tmp_path_factory):
    """Bound to 0.0.0.0 (beyond loopback: dashboards guarded), reached through 127.0.0.1."""
    g = KeyedGateway(
        tmp_path_factory.mktemp("aliases"), metered_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN},
        args=("--host", "0.0.0.0"),
    )  # fmt: skip
    key, _ = g.create_key(name="alias-user", models=["gpt-4o-mini", "text-embedding-3-small"])
    yield g, key
    g.terminate()


def test_the_openai_sdk_without_v1(beyond):
    gw, key = beyond
    client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=20)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(client.embeddings.create(model="text-embedding-3-small", input="hi").data[0].embedding) > 0
    assert sorted(m.id for m in client.models.list()) == ["gpt-4o-mini", "text-embedding-3-small"]
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("split")  # outside the key's models, as on /v1


@pytest.mark.parametrize("method,path,body", ALIASES, ids=[p for _, p, _ in ALIASES])
@pytest.mark.parametrize("auth", ["key", "none", "wrong"])
def test_each_alias_answers_like_its_v1_twin(beyond, method, path, body, auth):
    gw, key = beyond
    headers = {"key": {"Authorization": f"Bearer {key}"}, "none": {},
               "wrong": {"Authorization": "Bearer sk-llmgw-000000000000-" + "x" * 43}}[auth]  # fmt: skip
    alias = httpx.request(method, gw.url + path, json=body, headers=headers, timeout=20)
    twin = httpx.request(method, gw.url + "/v1" + path, json=body, headers=headers, timeout=20)
    assert alias.status_code == twin.status_code, (alias.text, twin.text)
    assert "www-authenticate" not in alias.headers
    if alias.status_code >= 400:
        assert alias.json()["error"]["code"] == twin.json()["error"]["code"] != "viewer_token_required"
    elif path.startswith("/models"):
        assert alias.json() == twin.json()
    if auth != "key":
        assert alias.status_code == 401


def test_dashboards_stay_guarded(beyond):
    gw, key = beyond
    for headers in ({}, {"Authorization": f"Bearer {key}"}):
        r = httpx.get(gw.url + "/", headers=headers, timeout=20)
        assert r.status_code == 401 and r.json()["error"]["code"] == "viewer_token_required"
