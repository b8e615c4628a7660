"""Outside-style: a dashboard page whose address (its filters) is too long to open its websocket.

By hand: `/routing?provider=AAAA…` with a 20,000-byte query answered 200 with the page, whose
"Loading…" line then stayed for good — Bokeh's websocket asks for the same query at
`/routing/ws?…`, and the handshake refuses a request line over 8,192 bytes (uvicorn's
websockets-sansio); the only trace was the browser console's "Could not open websocket". At
7,000 bytes the page loads. Expected: such a page refused at once with a 414 that says why, and
a page whose address fits still loads in full.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS

MAX_PAGE_TARGET = 8192 - len("GET /ws? HTTP/1.1\r\n")  # llmgw_kernel.dashboard_bridge's: the longest path + query


@pytest.fixture(scope="module")
def long_ok(gateway) -> str:
    path = "/routing"
    room = MAX_PAGE_TARGET - len(path) - len("provider=")
    return f"{path}?provider={'A' * room}"


def test_a_page_address_too_long_for_its_websocket_is_refused(gateway, long_ok: str) -> None:
    r = httpx.get(f"{gateway.url}{long_ok}A", headers={"accept": "text/html"}, timeout=120)
    assert r.status_code == 414, (r.status_code, r.text[:300])
    assert "too long" in r.text and f"{MAX_PAGE_TARGET:,}" in r.text, r.text
    assert r.headers.get("x-request-id", "").startswith("req_")
    ok = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert ok.status_code == 200, ok.text


def test_a_page_whose_address_fits_loads(gateway, long_ok: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            assert page.goto(f"{gateway.url}{long_ok}", timeout=120_000).status == 200
            page.wait_for_selector("[data-ready]", state="attached", timeout=180_000)  # the websocket opened
            assert not [e for e in errors if "websocket" in e.lower()], errors
        finally:
            browser.close()
