"""`/health` beyond loopback: anyone gets the status (and 200/503), only the dashboard or
admin token gets the details (policy file, routes, breakers, key count...). On loopback
(the default bind) the details stay open, like the dashboards."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "keys"))
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, metered_policy  # noqa: E402

DASH_TOKEN = "dash-token-for-health-7a2f"
DETAILS = ("policy_version", "policy_file", "routes", "circuits", "keys", "log", "cache", "admin_api", "reasons")
PATHS = ("/health", "/health/ready")


@pytest.fixture(scope="module")
def beyond(upstream, tmp_path_factory):
    g = KeyedGateway(
        tmp_path_factory.mktemp("health"), metered_policy(upstream.base_url),
        {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN, "LLMGW_DASHBOARD_TOKEN": DASH_TOKEN}, args=("--host", "0.0.0.0"),
    )  # fmt: skip
    key, _ = g.create_key(name="someone")
    yield g, key
    g.terminate()


@pytest.mark.parametrize("path", PATHS)
def test_anyone_gets_the_status_only(beyond, path):
    gw, key = beyond
    for headers in ({}, {"Authorization": f"Bearer {key}"}, {"Authorization": "Bearer wrong"}):
        r = httpx.get(gw.url + path, headers=headers, timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, (headers, r.text)
        assert str(gw.policy_path) not in r.text and "gpt-4o-mini" not in r.text
    assert httpx.get(gw.url + "/health/live", timeout=10).json() == {"status": "alive"}


@pytest.mark.parametrize("path", PATHS)
def test_the_dashboard_or_admin_token_gets_the_details(beyond, path):
    gw, _ = beyond
    for auth in ({"headers": {"Authorization": f"Bearer {DASH_TOKEN}"}}, {"auth": ("viewer", DASH_TOKEN)},
                 {"headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"}}):  # fmt: skip
        report = httpx.get(gw.url + path, timeout=10, **auth).json()
        assert report["status"] == "ok" and all(k in report for k in DETAILS), report
        assert report["policy_file"] == str(gw.policy_path) and "gpt-4o-mini" in report["routes"]
        assert report["keys"].startswith("enforced: 1 virtual keys")


def test_protect_dashboards_hides_details_on_loopback_too(upstream, tmp_path):
    g = KeyedGateway(tmp_path, metered_policy(upstream.base_url), {"LLMGW_DASHBOARD_TOKEN": DASH_TOKEN},
                     args=("--protect-dashboards",))  # fmt: skip
    try:
        assert httpx.get(g.url + "/health", timeout=10).json() == {"status": "ok"}
        details = httpx.get(g.url + "/health", headers={"Authorization": f"Bearer {DASH_TOKEN}"}, timeout=10).json()
        assert "routes" in details
    finally:
        g.terminate()


def test_loopback_keeps_the_details_open(gateway):
    report = httpx.get(gateway.url + "/health", timeout=10).json()
    assert report["status"] == "ok" and "routes" in report and "policy_file" in report
