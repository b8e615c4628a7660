"""Virtual keys through a real `llmgw serve`: open mode, the admin API over HTTP and through
`llmgw keys ...`, enforcement seen by the official openai SDK."""

from __future__ import annotations

import json
import time

import httpx
import openai
import orjson
import pytest
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, chat, cli, metered_policy

NO_KEY = {"Authorization": openai.Omit()}  # the SDK sends no Authorization header at all
ADMIN_ROUTES = [
    ("POST", "/admin/virtual-keys", {"name": "x"}),
    ("GET", "/admin/virtual-keys", None),
    ("GET", "/admin/virtual-keys?team=red", None),
    ("GET", "/admin/virtual-keys/{id}", None),
    ("PATCH", "/admin/virtual-keys/{id}", {"rpm": 5}),
    ("POST", "/admin/virtual-keys/{id}/revoke", None),
    ("POST", "/admin/virtual-keys/{id}/rotate", None),
    ("POST", "/admin/credentials", {"name": "c", "provider": "local", "api_key": "sk-x"}),
    ("GET", "/admin/credentials", None),
    ("DELETE", "/admin/credentials/c", None),
]


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    g = KeyedGateway(
        tmp_path_factory.mktemp("admin"), metered_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    yield g
    g.terminate()


def events(gw: KeyedGateway) -> list[dict]:
    return [orjson.loads(line) for line in (gw.data_dir / "keys" / "events.jsonl").read_bytes().splitlines() if line]


def test_open_mode_before_any_key(gw):
    health = httpx.get(f"{gw.url}/health").json()
    assert health["keys"].startswith("open:") and health["admin_api"] == "enabled"
    headers, completion = chat(gw.client("anything-goes"))
    assert completion.choices[0].message.content.startswith("Hello from the fake upstream")
    assert chat(gw.client("unused"), extra_headers=NO_KEY)[1].usage.completion_tokens == 7  # no key at all
    r = gw.key_info("anything-goes")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_virtual_keys"


def test_create_shows_the_key_once_and_enforcement_starts(gw):
    r = gw.admin("POST", "/admin/virtual-keys", {"name": "first", "team": "search", "budget_usd": 5, "rpm": 100})
    assert r.status_code == 201, r.text
    created = r.json()
    key, key_id = created["key"], created["id"]
    assert key.startswith(f"sk-llmgw-{key_id}-") and created["state"] == "active" and created["version"] == 1
    assert created["team"] == "search" and created["budget_usd"] == 5.0
    secret = key.removeprefix(f"sk-llmgw-{key_id}-")
    stored_hash = next(e["hash"] for e in events(gw) if e["id"] == key_id)
    shown = [gw.admin("GET", "/admin/virtual-keys"), gw.admin("GET", f"/admin/virtual-keys/{key_id}"),
             gw.admin("GET", "/admin/virtual-keys?team=search"), gw.key_info(key)]  # fmt: skip
    for resp in shown:
        assert resp.status_code == 200, resp.text
        assert key not in resp.text and secret not in resp.text and stored_hash not in resp.text
    listed = shown[0].json()["data"]
    assert [k["key"] for k in listed if k["id"] == key_id] == [f"sk-llmgw-{key_id}-****{key[-4:]}"]
    assert "hash" not in shown[1].json() and shown[1].json()["spend"][0]["scope"] == "key"
    assert gw.admin("GET", "/admin/virtual-keys?team=nobody").json()["data"] == []
    assert key not in (gw.data_dir / "keys" / "events.jsonl").read_text()

    assert httpx.get(f"{gw.url}/health").json()["keys"].startswith("enforced: 1 virtual keys")
    assert chat(gw.client(key))[1].usage.prompt_tokens == 11
    with pytest.raises(openai.AuthenticationError) as missing:
        chat(gw.client("unused"), extra_headers=NO_KEY)
    assert missing.value.status_code == 401 and missing.value.code == "missing_api_key"
    assert missing.value.body["type"] == "invalid_request_error" and missing.value.body["message"]
    for wrong in ("anything-goes", f"sk-llmgw-{key_id}-{'A' * 43}", key[:-1] + ("a" if key[-1] != "a" else "b")):
        with pytest.raises(openai.AuthenticationError) as invalid:
            chat(gw.client(wrong))
        assert invalid.value.code == "invalid_api_key", wrong
    r = httpx.get(f"{gw.base_url}/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    # the Anthropic header works as well as Bearer
    r = httpx.get(f"{gw.base_url}/llmgw/key", headers={"x-api-key": key})
    assert r.status_code == 200 and r.json()["id"] == key_id


def test_admin_routes_refuse_without_the_right_token(gw):
    key_id = gw.admin("GET", "/admin/virtual-keys").json()["data"][0]["id"]
    before = (gw.data_dir / "keys" / "events.jsonl").read_bytes()
    for method, path, body in ADMIN_ROUTES:
        path = path.format(id=key_id)
        for token in (None, "wrong-token", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]):
            r = gw.admin(method, path, body, token=token)
            assert r.status_code == 401, (method, path, token, r.status_code)
            assert set(r.json()) == {"error"} and r.json()["error"]["code"] == "invalid_admin_token"
            assert key_id not in r.text and "sk-llmgw" not in r.text
        basic = httpx.request(method, gw.url + path, json=body, auth=("admin", ADMIN_TOKEN))
        assert basic.status_code == 401, (method, path)  # only Bearer is an admin credential
    assert (gw.data_dir / "keys" / "events.jsonl").read_bytes() == before  # nothing changed


def test_patch_revoke_rotate(gw):
    key, created = gw.create_key(name="lifecycle", team="search")
    key_id = created["id"]
    r = gw.admin("PATCH", f"/admin/virtual-keys/{key_id}", {"name": "renamed", "rpm": 50, "metadata": {"owner": "x"}})
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.json()["rpm"] == 50
    assert r.json()["team"] == "search" and r.json()["version"] == 2 and "key" in r.json()
    assert r.json()["key"].endswith("****" + key[-4:])
    assert gw.key_info(key).json()["name"] == "renamed"

    # rotate: the old key stops at once, the new one works, same id
    r = gw.admin("POST", f"/admin/virtual-keys/{key_id}/rotate")
    assert r.status_code == 200 and r.json()["id"] == key_id
    new_key = r.json()["key"]
    assert new_key != key and new_key.startswith(f"sk-llmgw-{key_id}-")
    with pytest.raises(openai.AuthenticationError) as old:
        chat(gw.client(key))
    assert old.value.code == "invalid_api_key"
    assert chat(gw.client(new_key))[1].usage.completion_tokens == 7
    assert gw.admin("GET", f"/admin/virtual-keys/{key_id}").json()["key"].endswith(new_key[-4:])

    # revoke: the very next request is refused
    r = gw.admin("POST", f"/admin/virtual-keys/{key_id}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "revoked" and "sk-llmgw" in r.json()["key"]
    assert new_key not in r.text
    with pytest.raises(openai.AuthenticationError) as revoked:
        chat(gw.client(new_key))
    assert revoked.value.code == "key_revoked" and new_key not in str(revoked.value.body)
    assert gw.key_info(new_key).status_code == 401
    r = gw.admin("POST", f"/admin/virtual-keys/{key_id}/rotate")
    assert r.status_code == 409 and r.json()["error"]["code"] == "key_revoked"
    assert gw.admin("GET", "/admin/virtual-keys/0123456789ab").status_code == 404
    assert gw.admin("DELETE", f"/admin/virtual-keys/{key_id}").status_code == 405
    kinds = [e["type"] for e in events(gw) if e["id"] == key_id]
    assert kinds == ["create", "update", "rotate", "revoke"]


def test_expired_key(gw):
    # 6 s, not 1: at load ~12 the key's creation and first request took longer than a second
    expires_at = time.time() + 6.0
    key, created = gw.create_key(name="short-lived", expires_at=expires_at)
    assert chat(gw.client(key))[1].usage.prompt_tokens == 11
    time.sleep(max(0.0, expires_at - time.time()) + 0.1)  # the clock past the expiry
    with pytest.raises(openai.AuthenticationError) as expired:
        chat(gw.client(key))
    assert expired.value.code == "key_expired"
    assert gw.admin("GET", f"/admin/virtual-keys/{created['id']}").json()["state"] == "expired"
    born = gw.admin("POST", "/admin/virtual-keys", {"name": "born-expired", "expires_at": "2020-01-01T00:00:00Z"})
    assert born.status_code == 400 and born.json()["error"]["param"] == "expires_at", born.text  # never issued


def test_model_allow_list(gw):
    key, created = gw.create_key(name="narrow", models=["gpt-4o-mini", "demo"])
    client = gw.client(key)
    assert chat(client)[1].usage.prompt_tokens == 11
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(client, model="split")
    assert denied.value.status_code == 403 and denied.value.code == "model_not_allowed"
    assert "split" in denied.value.message
    assert sorted(m.id for m in client.models.list()) == ["demo", "gpt-4o-mini"]
    assert client.models.retrieve("demo").id == "demo"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("split")
    everything = {m.id for m in gw.client(gw.create_key(name="wide")[0]).models.list()}
    assert {"split", "fallback", "gpt-4o-mini"} <= everything
    # narrowing a key by PATCH applies to the next request
    gw.admin("PATCH", f"/admin/virtual-keys/{created['id']}", {"models": ["demo"]})
    with pytest.raises(openai.PermissionDeniedError):
        chat(client)
    assert [m.id for m in client.models.list()] == ["demo"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"team": "x"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "n", "budget_usd": -1}, "budget_usd"),
        ({"name": "n", "budget_usd": "ten"}, "budget_usd"),
        ({"name": "n", "budget_window": "year"}, "budget_window"),
        ({"name": "n", "rpm": 0}, "rpm"),
        ({"name": "n", "tpm": 1.5}, "tpm"),
        ({"name": "n", "models": "gpt-4o-mini"}, "models"),
        ({"name": "n", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "n", "team": 7}, "team"),
        ({"name": "n", "metadata": [1]}, "metadata"),
        ({"name": "n", "colour": "red"}, "colour"),
    ],
)
def test_key_validation_errors_name_the_field(gw, body, field):
    n = len(events(gw))
    r = gw.admin("POST", "/admin/virtual-keys", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_field" and field in err["message"], err
    assert len(events(gw)) == n


def test_patch_and_credential_validation(gw):
    key_id = gw.admin("GET", "/admin/virtual-keys").json()["data"][0]["id"]
    r = gw.admin("PATCH", f"/admin/virtual-keys/{key_id}", {"rpm": -3})
    assert r.status_code == 400 and "rpm" in r.json()["error"]["message"]
    r = httpx.post(
        f"{gw.url}/admin/virtual-keys", content=b"{not json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = gw.admin("POST", "/admin/credentials", {"name": "c", "provider": "local"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "api_key"
    # no LLMGW_MASTER_KEY on this server: credentials are refused, never stored in clear
    r = gw.admin("POST", "/admin/credentials", {"name": "c", "provider": "local", "api_key": "sk-would-be-plain-1234"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "master_key_missing", r.text
    assert "LLMGW_MASTER_KEY" in r.json()["error"]["message"]
    assert "sk-would-be-plain-1234" not in (gw.data_dir / "keys" / "secrets.json").read_text()
    assert gw.admin("GET", "/admin/credentials").json()["data"] == []
    assert httpx.get(f"{gw.url}/health").json()["credentials_encrypted"] is False


def test_cli_lifecycle(gw):
    env = {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    created = cli("keys", "create", "--name", "cli-bot", "--team", "ops", "--budget-usd", "5", "--rpm", "60",
                  "--models", "gpt-4o-mini", "demo", "--metadata", '{"ticket": 42}', "--url", gw.url, env=env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    key, key_id = record["key"], record["id"]
    assert record["models"] == ["gpt-4o-mini", "demo"] and record["metadata"] == {"ticket": 42}
    assert chat(gw.client(key))[1].usage.prompt_tokens == 11

    listed = cli("keys", "list", "--team", "ops", "--url", gw.url, env=env)
    assert listed.returncode == 0 and [k["id"] for k in json.loads(listed.stdout)["data"]] == [key_id]
    assert key not in listed.stdout
    shown = cli("keys", "show", key_id, "--url", gw.url, env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["spend"][0]["spent_usd"] == pytest.approx(0.018)
    assert key not in shown.stdout
    updated = cli("keys", "update", key_id, "--budget-usd", "7", "--url", gw.url, env=env)
    assert updated.returncode == 0 and json.loads(updated.stdout)["budget_usd"] == 7.0
    assert json.loads(updated.stdout)["name"] == "cli-bot"  # untouched fields stay

    rotated = cli("keys", "rotate", key_id, "--url", gw.url, env=env)
    new_key = json.loads(rotated.stdout)["key"]
    with pytest.raises(openai.AuthenticationError):
        chat(gw.client(key))
    assert chat(gw.client(new_key))[1].usage.prompt_tokens == 11
    revoked = cli("keys", "revoke", key_id, "--url", gw.url, env=env)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["state"] == "revoked"
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw.client(new_key))
    assert err.value.code == "key_revoked"

    wrong = cli("keys", "list", "--url", gw.url, env={"LLMGW_ADMIN_TOKEN": "nope"})
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["error"]["code"] == "invalid_admin_token"
    no_token = cli("keys", "list", "--url", gw.url)
    assert no_token.returncode == 2 and "LLMGW_ADMIN_TOKEN" in no_token.stderr
    bad = cli("keys", "create", "--name", "x", "--rpm", "0", "--url", gw.url, env=env)
    assert bad.returncode == 1 and "rpm" in json.loads(bad.stdout)["error"]["message"]


def test_admin_disabled_without_a_token(upstream, tmp_path):
    g = KeyedGateway(tmp_path, metered_policy(upstream.base_url))
    try:
        assert httpx.get(f"{g.url}/health").json()["admin_api"].startswith("disabled")
        for method, path, body in ADMIN_ROUTES:
            path = path.format(id="0123456789ab")
            for token in (None, "wrong", ADMIN_TOKEN):
                r = g.admin(method, path, body, token=token)
                assert r.status_code == 403, (method, path, r.status_code)
                assert r.json()["error"]["code"] == "admin_disabled"
        assert not (g.data_dir / "keys" / "events.jsonl").exists()
        assert httpx.get(f"{g.url}/health").json()["keys"].startswith("open:")
        created = cli("keys", "create", "--name", "x", "--url", g.url, env={"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
        assert created.returncode == 1 and "admin_disabled" in created.stdout
    finally:
        g.terminate()
