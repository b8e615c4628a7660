"""Bad admin API bodies get a 400 naming the parameter — never a 5xx — and leave the key
journal loadable: nesting beyond the gateway's JSON depth limit (the same parser as the
proxy's bodies), wrong types, numbers out of range, bytes that are not UTF-8."""

from __future__ import annotations

import httpx
import pytest
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, metered_policy

from llmgw_kernel.keys.store import KeyHistory

MASTER = "sFq1gG2h6b0Lr1i8N4xJ2oTqHgq3vQ0mWcKkq7y2m9E="


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def nested_list(levels: int) -> object:
    value: object = "x"
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    g = KeyedGateway(
        tmp_path_factory.mktemp("admin-bodies"), metered_policy(upstream.base_url),
        {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN, "LLMGW_MASTER_KEY": MASTER},
    )  # fmt: skip
    _, created = g.create_key(name="target")
    g.key_id = created["id"]
    yield g
    g.terminate()


BAD = [  # (method, path, body, the field the error's param must name (a path inside it may follow))
    ("POST", "/admin/virtual-keys", {"name": "deep", "metadata": nested(300)}, "metadata."),
    ("POST", "/admin/virtual-keys", {"name": "deep", "metadata": nested(100)}, "metadata."),
    ("POST", "/admin/virtual-keys", {"name": "deep", "metadata": {"x": nested_list(500)}}, "metadata."),
    ("POST", "/admin/virtual-keys", {"name": nested_list(300)}, "name"),
    ("POST", "/admin/virtual-keys", {"name": "m", "models": nested_list(300)}, "models"),
    ("POST", "/admin/virtual-keys", {"name": ["x"]}, "name"),
    ("POST", "/admin/virtual-keys", {"name": "r", "rpm": 2**80}, "rpm"),
    ("POST", "/admin/virtual-keys", {"name": "r", "rpm": 1.5}, "rpm"),
    ("POST", "/admin/virtual-keys", {"name": "b", "budget_usd": "5"}, "budget_usd"),
    ("POST", "/admin/virtual-keys", {"name": "e", "expires_at": "tomorrow"}, "expires_at"),
    ("POST", "/admin/virtual-keys", {"name": "e", "expires_at": [1]}, "expires_at"),
    ("POST", "/admin/virtual-keys", {"name": "e", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),  # passed
    ("POST", "/admin/virtual-keys", {"name": "e", "expires_at": 0}, "expires_at"),
    ("PATCH", "/admin/virtual-keys/{id}", {"expires_at": 1_000_000}, "expires_at"),
    ("POST", "/admin/virtual-keys", {"name": "t", "team": {"a": 1}}, "team"),
    ("PATCH", "/admin/virtual-keys/{id}", {"metadata": nested(300)}, "metadata."),
    ("PATCH", "/admin/virtual-keys/{id}", {"models": "gpt-4o-mini"}, "models"),
    ("POST", "/admin/credentials", {"name": "c", "provider": "local", "api_key": nested(300)}, "api_key"),
    ("POST", "/admin/credentials", {"name": nested_list(300), "provider": "local", "api_key": "k"}, "name"),
]


@pytest.mark.parametrize("method,path,body,param", BAD, ids=[f"{m} {p} {pa}" for m, p, _, pa in BAD])
def test_bad_bodies_get_400_naming_the_param(gw, method, path, body, param):
    r = gw.admin(method, path.replace("{id}", gw.key_id), body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    named = error["param"] or ""
    assert named.split(".")[0].split("[")[0] == param.rstrip("."), error  # the top-level field, maybe a path in it
    assert error["type"] == "invalid_request_error" and error["code"]


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{",
        b'{"name": "\xed\xa0\x80"}',
        b"[1, 2]",
        b'{"name": "x"',
        b'"just a string"',
        b"1e999",
        b'{"name": "n", "budget_usd": 1e999}',  # JSON has no NaN or Infinity: refused, never stored
        b'{"name": "n", "budget_usd": NaN}',
        b'{"name": "n", "expires_at": Infinity}',
        b'{"name": "n", "metadata": {"a": -1e999}}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_bodies_that_are_not_a_json_object(gw, raw):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    r = httpx.post(f"{gw.url}/admin/virtual-keys", content=raw, headers=headers, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_json", "invalid_body"), r.text


def test_the_server_and_the_journal_survive(gw):
    assert httpx.get(f"{gw.url}/health", timeout=10).status_code == 200
    history = KeyHistory.load(gw.data_dir)  # every line written is loadable
    assert set(history.current) == {gw.key_id}
    assert gw.admin("POST", "/admin/virtual-keys", {"name": "fine", "metadata": nested(20)}).status_code == 201
