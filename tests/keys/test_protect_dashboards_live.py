"""`llmgw serve --protect-dashboards`: dashboards and /metrics need the dashboard token even on
loopback (Bearer, or Basic with the token as password); the API is unaffected."""

from __future__ import annotations

import httpx
import pytest
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, chat, metered_policy

DASH_TOKEN = "dash-token-for-tests-51be"


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    g = KeyedGateway(
        tmp_path_factory.mktemp("protected"), metered_policy(upstream.base_url),
        {"LLMGW_DASHBOARD_TOKEN": DASH_TOKEN, "LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}, args=("--protect-dashboards",),
    )  # fmt: skip
    yield g
    g.terminate()


@pytest.mark.parametrize("path", ["/metrics", "/"])
def test_without_the_token_401_with_a_challenge(gw, path):
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {ADMIN_TOKEN}x"}):
        r = httpx.get(gw.url + path, headers=auth, timeout=10)
        assert r.status_code == 401, (path, auth, r.status_code)
        assert r.headers["www-authenticate"].startswith("Basic")
        assert r.json()["error"]["code"] == "viewer_token_required"
    r = httpx.get(gw.url + path, auth=("viewer", "wrong"), timeout=10)
    assert r.status_code == 401


def test_metrics_with_bearer_or_basic(gw):
    r = httpx.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {DASH_TOKEN}"})
    assert r.status_code == 200 and "llmgw" in r.text
    r = httpx.get(f"{gw.url}/metrics", auth=("anyone", DASH_TOKEN))
    assert r.status_code == 200 and "llmgw" in r.text


def test_the_dashboard_with_the_token(gw):
    r = httpx.get(f"{gw.url}/", auth=("viewer", DASH_TOKEN), timeout=90, follow_redirects=False)
    assert r.status_code in (200, 302, 307), r.status_code
    if r.status_code != 200:  # Panel redirects to the first dashboard: that page needs the token too
        target = r.headers["location"]
        assert httpx.get(gw.url + target, timeout=30).status_code == 401
        r = httpx.get(gw.url + target, auth=("viewer", DASH_TOKEN), timeout=90)
    assert r.status_code == 200 and "<html" in r.text.lower()


def test_the_api_is_unaffected(gw):
    assert httpx.get(f"{gw.url}/health").status_code == 200
    assert httpx.get(f"{gw.url}/v1/models").status_code == 200
    assert chat(gw.client("sk-open-mode"))[1].usage.prompt_tokens == 11
    assert (
        httpx.get(f"{gw.url}/admin/virtual-keys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    )
    # the dashboard token is no admin token
    assert (
        httpx.get(f"{gw.url}/admin/virtual-keys", headers={"Authorization": f"Bearer {DASH_TOKEN}"}).status_code == 401
    )


def test_the_admin_token_serves_when_no_dashboard_token_is_set(upstream, tmp_path):
    g = KeyedGateway(tmp_path / "a", metered_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN},
                     args=("--protect-dashboards",))  # fmt: skip
    try:
        assert httpx.get(f"{g.url}/metrics").status_code == 401
        assert httpx.get(f"{g.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    finally:
        g.terminate()
    g = KeyedGateway(tmp_path / "b", metered_policy(upstream.base_url), args=("--protect-dashboards",))
    try:
        r = httpx.get(f"{g.url}/metrics")
        assert r.status_code == 403 and r.json()["error"]["code"] == "viewer_token_missing"
        assert httpx.get(f"{g.url}/v1/models").status_code == 200
    finally:
        g.terminate()
