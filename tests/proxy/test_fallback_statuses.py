"""Which upstream statuses fall back to the next target: every 5xx (not only 500/502/503/504),
408 and 429; other 4xx are the client's problem and are answered as they are (docs/routing.md)."""

from __future__ import annotations

import httpx
import pytest
from conftest import policy_for

FALLS_BACK = [408, 429, 500, 501, 502, 503, 504, 505, 507, 520, 529, 599]
ANSWERED = [400, 404, 422]


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    from conftest import Gateway

    routes = {
        f"s{code}": {
            "targets": [{"provider": "local", "model": f"status-{code}"}, {"provider": "other", "model": "gpt-4o"}]
        }
        for code in FALLS_BACK + ANSWERED
    }
    policy = policy_for(upstream.base_url)
    policy["routes"] = {**policy["routes"], **routes}
    g = Gateway(tmp_path_factory.mktemp("statuses"), policy)
    yield g
    g.terminate()


def _chat(gw, route: str) -> httpx.Response:
    body = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=20)


@pytest.mark.parametrize("code", FALLS_BACK)
def test_server_errors_408_and_429_fall_back(gw, code):
    r = _chat(gw, f"s{code}")
    assert r.status_code == 200, r.text
    assert r.headers["x-llmgw-target"] == "other/gpt-4o"


@pytest.mark.parametrize("code", ANSWERED)
def test_other_client_errors_do_not_fall_back(gw, code):
    r = _chat(gw, f"s{code}")
    assert r.status_code == code, r.text
    assert r.json()["error"]["message"]
