"""Outside-style: a key limited to some models is not shown the other routes in an unknown-model error.

docs/keys.md: "`/v1/models` lists only the routes a key may use"; and `GET /v1/models/nope` with such a key
answers "The model 'nope' does not exist on this gateway. Available: demo." — the key's routes only.

The same mistake on the request routes (`/v1/chat/completions`, `/v1/embeddings`, `/v1/responses`,
`/v1/messages`) answers 404 with "Available: " followed by every route of the live policy, the ones the key
may not use included (here `secret-internal-route`): the route list `/v1/models` hides is one typo away.
"""

from __future__ import annotations

import httpx
from conftest import policy_for

ADMIN = "adm-s5-routes"


def test_unknown_model_errors_list_only_the_keys_routes(make_gateway) -> None:
    policy = policy_for("http://127.0.0.1:9/v1")
    policy["routes"]["secret-internal-route"] = {"targets": [{"provider": "demo", "model": "demo-x"}]}
    gw = make_gateway(policy, env={"LLMGW_ADMIN_TOKEN": ADMIN})
    created = httpx.post(
        f"{gw.url}/admin/virtual-keys",
        headers={"authorization": f"Bearer {ADMIN}"},
        json={"name": "k", "models": ["demo"]},
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    bearer = {"authorization": f"Bearer {key}"}
    # the control: the models routes show the key's routes only (this holds today)
    assert [m["id"] for m in httpx.get(f"{gw.base_url}/models", headers=bearer).json()["data"]] == ["demo"]
    assert "secret-internal-route" not in httpx.get(f"{gw.base_url}/models/nope", headers=bearer).text
    chat = {"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    answers = {
        "chat": httpx.post(f"{gw.base_url}/chat/completions", headers=bearer, json=chat),
        "embeddings": httpx.post(f"{gw.base_url}/embeddings", headers=bearer, json={"model": "nope", "input": "x"}),
        "responses": httpx.post(f"{gw.base_url}/responses", headers=bearer, json={"model": "nope", "input": "x"}),
        "messages": httpx.post(
            f"{gw.url}/v1/messages",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            json={**chat, "max_tokens": 5},
        ),
    }
    for name, r in answers.items():
        assert r.status_code in (403, 404), (name, r.status_code, r.text)
    leaked = {name: r.text for name, r in answers.items() if "secret-internal-route" in r.text}
    assert not leaked, leaked
    # the key's own routes are still named (the hint is narrowed, not dropped)
    for name in ("chat", "embeddings", "responses"):
        assert "Available: demo." in answers[name].json()["error"]["message"], (name, answers[name].text)
    assert "Available: demo." in answers["messages"].text, answers["messages"].text
    # a key without a model list may use every route, so its 404 names them all
    unlimited = httpx.post(
        f"{gw.url}/admin/virtual-keys", headers={"authorization": f"Bearer {ADMIN}"}, json={"name": "all"}
    )
    assert unlimited.status_code == 201, unlimited.text
    wide = httpx.post(
        f"{gw.base_url}/chat/completions", headers={"authorization": f"Bearer {unlimited.json()['key']}"}, json=chat
    )
    assert wide.status_code == 404 and "secret-internal-route" in wide.text, wide.text
