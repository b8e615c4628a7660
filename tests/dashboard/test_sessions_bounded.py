"""Dashboard sessions are bounded (page_handler.py ``SessionLimits``, panel_thread.py): clients
that load a page and hang up after its first bytes each leave a Panel session behind (~1 MB of
the dashboard process); a session without a websocket is discarded after
``LLMGW_DASHBOARD_SESSION_IDLE_S``, and beyond ``LLMGW_DASHBOARD_MAX_SESSIONS`` sessions (or
``LLMGW_DASHBOARD_MAX_PENDING_SESSIONS`` being made) a page is answered 503 with Retry-After —
the server and the proxy stay up, and a page loads again once the abandoned sessions are gone.
An open tab (its websocket connected) keeps its session past the idle time.

Before: nothing capped the sessions (every hung-up load made one, kept 15-32 s by Bokeh's
defaults), so a burst of them grew the process without bound.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, Gateway, until

pytest.importorskip("panel")

IDLE_S = 3
MAX_SESSIONS = 3
LIMITS = {
    "LLMGW_DASHBOARD_MAX_SESSIONS": str(MAX_SESSIONS),
    "LLMGW_DASHBOARD_MAX_PENDING_SESSIONS": "2",
    "LLMGW_DASHBOARD_SESSION_IDLE_S": str(IDLE_S),
}
HTML = {"Accept": "text/html"}
POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gateway = Gateway(tmp_path_factory.mktemp("sessions"), POLICY, env=LIMITS)
    yield gateway
    gateway.terminate()


def _page(gw: Gateway, path: str = "/overview") -> httpx.Response | None:
    """A whole page load (None while Panel starts: the placeholder)."""
    r = httpx.get(gw.url + path, headers=HTML, timeout=120)
    return None if r.headers.get("x-llmgw-dashboard") == "starting" else r


def _hang_up(gw: Gateway, i: int, statuses: list[int]) -> None:
    """Load a page and close the connection after its first bytes."""
    with httpx.stream("GET", f"{gw.url}/overview?team=t{i}", headers=HTML, timeout=120) as r:
        statuses.append(r.status_code)
        if r.status_code == 503:
            r.read()
            assert r.headers["retry-after"].isdigit(), r.headers
            assert "session limit" in r.text and "LLMGW_DASHBOARD_MAX_SESSIONS" in r.text, r.text
            return
        next(r.iter_raw())


def _burst(gw: Gateway, n: int) -> list[int]:
    statuses: list[int] = []
    threads = [threading.Thread(target=_hang_up, args=(gw, i, statuses)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(statuses) == n, statuses
    return statuses


def _panel_rss_mb(gw: Gateway) -> float:
    out = subprocess.run(
        ["ps", "-ww", "-o", "pid=,rss=,args=", "--ppid", str(gw.proc.pid)], capture_output=True, text=True
    )
    [rss] = [int(line.split()[1]) for line in out.stdout.splitlines() if "panel_process" in line]
    return rss / 1024


def test_hung_up_loads_are_capped_and_discarded(gw):
    first = until("the dashboards serve a page", lambda: _page(gw), timeout=180, every=0.3)
    assert first.status_code == 200, first.text
    baseline = _panel_rss_mb(gw)
    # a burst past the cap: those beyond it are told so, at once, with a Retry-After
    statuses = _burst(gw, 3 * MAX_SESSIONS)
    assert 503 in statuses and 200 in statuses, statuses
    # logged once per 10 s with a count, not a line per refused request (Tornado's access line)
    until("the refusal is logged", lambda: "refused (503)" in gw.server_log(), timeout=30)
    assert "503 GET" not in gw.server_log()
    # the proxy stays up meanwhile
    assert httpx.get(gw.url + "/health", timeout=30).status_code == 200
    # the abandoned sessions go after IDLE_S without a websocket: a page loads again
    again = until("a page loads once the hung-up loads' sessions are discarded",
                  lambda: (r := _page(gw)) is not None and r.status_code == 200 and r, timeout=120, every=0.5)  # fmt: skip
    assert again.text.rstrip().endswith("</html>")
    # bounded: at most MAX_SESSIONS sessions ever lived, so the process did not grow per load
    assert _panel_rss_mb(gw) < baseline + 20 * MAX_SESSIONS, (baseline, _panel_rss_mb(gw))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
def test_an_open_tab_keeps_its_session_past_the_idle_time(gw):
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    until("the dashboards serve a page", lambda: _page(gw), timeout=180, every=0.3)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(gw.url + "/overview", timeout=120_000)
            page.wait_for_selector('[data-ready][data-page="overview"]', state="attached", timeout=120_000)
            page.evaluate("window.__llmgwDocument = 'first'")
            # past the idle time, shown by state: other sessions made after the tab's were discarded
            _burst(gw, MAX_SESSIONS)
            until("the hung-up loads' sessions are discarded",
                  lambda: (r := _page(gw)) is not None and r.status_code == 200, timeout=120, every=0.5)  # fmt: skip
            # the tab's session is still there: a link swaps the page over its websocket
            page.click('[data-nav="cost"]')
            page.wait_for_selector('[data-ready][data-page="cost"]', state="attached", timeout=60_000)
            assert page.evaluate("window.__llmgwDocument") == "first", "the tab loaded a new document"
        finally:
            browser.close()


def test_a_bad_limit_is_named_not_guessed(tmp_path):
    """A limit that is not a positive number keeps the dashboards from starting, and the page's
    503 names it (the proxy stays up), instead of a default silently in its place."""
    from llmgw_kernel.dashboard.page_handler import SessionLimits

    assert SessionLimits.from_env({}) == SessionLimits()
    assert SessionLimits.from_env({"LLMGW_DASHBOARD_SESSION_IDLE_S": "2.5"}).idle_s == 2.5
    for bad in ("0", "-3", "nan", "inf", "many", "1.5"):
        with pytest.raises(ValueError, match="LLMGW_DASHBOARD_MAX_SESSIONS"):
            SessionLimits.from_env({"LLMGW_DASHBOARD_MAX_SESSIONS": bad})
    gateway = Gateway(tmp_path, POLICY, env={"LLMGW_DASHBOARD_SESSION_IDLE_S": "soon"})
    try:

        def refused() -> httpx.Response | None:
            r = httpx.get(gateway.url + "/overview", headers=HTML, timeout=120)
            return r if r.status_code == 503 else None

        r = until("the dashboards refuse to start", refused, timeout=180, every=0.3)
        assert "LLMGW_DASHBOARD_SESSION_IDLE_S" in r.text and "soon" in r.text, r.text
        assert httpx.get(gateway.url + "/health", timeout=30).status_code == 200
    finally:
        gateway.terminate()
