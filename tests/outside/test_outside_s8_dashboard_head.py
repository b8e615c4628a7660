"""Outside-style: `HEAD` on a dashboard page (what uptime monitors and link checkers send).

By hand: `curl -I http://127.0.0.1:P/overview` got `405 Method Not Allowed` (Tornado's HTML
error page) while `GET` answers 200, and every API route answers `HEAD` as its `GET`
(docs/server.md). Expected: 200 with the page's content type and no body, as `GET` would start,
without making a session; the proxy keeps answering.
"""

from __future__ import annotations

import httpx


def test_head_on_a_page_is_its_get_without_a_body(gateway) -> None:
    for path in ("/overview", "/cost?window=24+h", "/policy"):
        r = httpx.head(f"{gateway.url}{path}", headers={"accept": "text/html"}, timeout=120)
        if r.headers.get("x-llmgw-dashboard") == "starting":  # Panel starting: the placeholder's head
            r = _after_start(gateway, path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html") and r.content == b"", (path, r.headers)
        assert r.headers.get("x-request-id", "").startswith("req_")
    ok = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert ok.status_code == 200, ok.text


def _after_start(gateway, path: str) -> httpx.Response:
    from conftest import until

    until("the dashboards start", lambda: httpx.get(f"{gateway.url}/overview", headers={"accept": "text/html"}, timeout=120).headers.get("x-llmgw-dashboard") != "starting", timeout=180)  # fmt: skip
    return httpx.head(f"{gateway.url}{path}", headers={"accept": "text/html"}, timeout=120)
