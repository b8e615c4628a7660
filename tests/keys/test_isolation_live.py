"""Teams do not see each other through a real `llmgw serve`: a key's own info shows only its key
and team, and cached answers never cross keys (whatever the client claims in headers)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from conftest import wait_for_rows
from keyed_gateway import ACTUAL_USD, ADMIN_TOKEN, KeyedGateway, chat, metered_policy


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    policy = metered_policy(
        upstream.base_url,
        cache={"exact": {"ttl_s": 600}},
        budgets={"limits": [{"scope": "team", "usd": 10, "window": "month"}]},  # each team its own
    )
    g = KeyedGateway(tmp_path_factory.mktemp("teams"), policy, {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
    yield g
    g.terminate()


@pytest.fixture(scope="module")
def keys(gw):
    a1, ra1 = gw.create_key(name="a-one", team="team-a", budget_usd=3)
    a2, ra2 = gw.create_key(name="a-two", team="team-a")
    b, rb = gw.create_key(name="b-one", team="team-b", budget_usd=4)
    return {"a1": (a1, ra1["id"]), "a2": (a2, ra2["id"]), "b": (b, rb["id"])}


def test_a_key_sees_only_its_own_key_and_team(gw, keys):
    (a1, a1_id), (b, b_id) = keys["a1"], keys["b"]
    chat(gw.client(a1), text=f"a {uuid.uuid4().hex}")
    for _ in range(3):
        chat(gw.client(b), text=f"b {uuid.uuid4().hex}")
    r = gw.key_info(a1)
    assert r.status_code == 200
    info = r.json()
    assert info["id"] == a1_id and info["team"] == "team-a" and info["key"].endswith(a1[-4:])
    assert b_id not in r.text and "team-b" not in r.text and "b-one" not in r.text and keys["a2"][1] not in r.text
    by_scope = {s["scope"]: s for s in info["spend"]}
    assert set(by_scope) == {"team", "key"}
    assert by_scope["team"]["name"] == "team-a" and by_scope["team"]["spent_usd"] == pytest.approx(ACTUAL_USD)
    assert by_scope["key"]["name"] == a1_id and by_scope["key"]["budget_usd"] == 3
    rb = gw.key_info(b).json()
    assert {s["name"]: s["spent_usd"] for s in rb["spend"]} == pytest.approx(
        {"team-b": 3 * ACTUAL_USD, b_id: 3 * ACTUAL_USD}
    )
    # a team member's key sees the team spend, not the other key's settings
    a2_info = gw.key_info(keys["a2"][0])
    assert a1_id not in a2_info.text and [s["scope"] for s in a2_info.json()["spend"]] == ["team"]
    # the key's info route is no way into the admin API
    for path in ("/admin/virtual-keys", f"/admin/virtual-keys/{b_id}"):
        assert httpx.get(gw.url + path, headers={"Authorization": f"Bearer {a1}"}).status_code == 401


def test_claiming_another_team_in_metadata_changes_nothing(gw, keys):
    b, b_id = keys["b"]
    h, _ = chat(
        gw.client(b), text=f"claim {uuid.uuid4().hex}", extra_headers={"x-llmgw-metadata": '{"team": "team-a"}'}
    )
    row = wait_for_rows(gw, f"request_id = '{h['x-llmgw-request-id']}'")[0]
    assert row["team"] == "team-b" and row["key_id"] == b_id


@pytest.mark.parametrize("namespace", [None, "shared-ns"], ids=["default", "same-namespace-header"])
def test_cache_entries_never_cross_keys(gw, keys, upstream, namespace):
    (a1, _), (a2, _), (b, _) = keys["a1"], keys["a2"], keys["b"]
    text = f"What is the tallest mountain? {uuid.uuid4().hex[:8]}"
    extra = {"x-llmgw-cache-namespace": namespace} if namespace else {}
    extra_b = {**extra, "x-llmgw-metadata": '{"team": "team-a"}'}

    def outcome(key: str, headers: dict) -> str:
        return chat(gw.client(key), text=text, extra_headers=headers)[0]["x-llmgw-cache"]

    assert outcome(a1, extra) == "miss"
    assert outcome(a1, extra) == "hit"
    assert outcome(b, extra) == "miss"  # another team's key
    assert outcome(b, extra_b) == "hit"  # its own entry; claiming team-a does not reach a1's
    assert outcome(a2, extra) == "miss"  # the same team, another key
    reached = sum(1 for r in upstream.requests if (r["body"].get("messages") or [{}])[-1].get("content") == text)
    assert reached == 3
