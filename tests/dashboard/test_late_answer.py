"""A page whose answer arrives while the browser is loading the document still shows its
figures and tables, not only its "ready" line.

Panel (1.9) drops a layout's changes made after the browser pulled the session's document but
before it reported the document loaded (it expects to send the whole document at load). A
page's answer arriving in that window showed "ready" (an HTML pane's change gets through)
over an empty page (the layout's new children never did): seen as the cache page of
benchmarks/dashboard_pages.py never drawing its charts. Here the window is made certain:
the log's query lock is held until the browser has received the document.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")

pytest.importorskip("panel")
pytest.importorskip("playwright")

from llmgw_kernel.dashboard.panel_thread import PanelThread  # noqa: E402

#: a window that ended long ago: its answers are kept (settled), so the second load's come at once
WINDOW = "since=2020-01-01T00:00:00&until=2020-01-02T00:00:00"


@pytest.fixture()
def panel(tmp_path):
    started = threading.Event()
    server = PanelThread(tmp_path, ["*"], lambda port, error: started.set())
    server.start()
    assert started.wait(60) and server.port is not None, "the dashboard server did not start"
    yield server
    server.stop()


def test_an_answer_arriving_while_the_browser_loads_the_document_is_shown(panel):
    from playwright.sync_api import sync_playwright

    (ctx,) = panel._stores
    lock = ctx.queries._lock  # the one DuckDB connection's lock: every page query waits on it
    released = threading.Event()
    url = f"http://127.0.0.1:{panel.port}/cost?{WINDOW}"

    def on_frame(payload: str | bytes) -> None:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        if "PULL-DOC-REPLY" in text and not released.is_set():
            released.set()
            lock.release()  # the answer now comes while the browser builds the document

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            warm = browser.new_page()  # the answers, cached (a settled window): instant once let through
            warm.goto(url, timeout=60_000)
            warm.wait_for_selector("[data-ready]", state="attached", timeout=60_000)
            warm.close()
            lock.acquire()
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
            page.goto(url, timeout=60_000)
            page.wait_for_selector("[data-ready]", state="attached", timeout=60_000)
            assert released.is_set()
            # the cost page's table and chart, in the browser's document
            page.locator("table.llmgw-top-spenders").first.wait_for(state="attached", timeout=20_000)
            assert page.locator("svg.llmgw-chart").count() == 1  # static SVG since f124290, no Bokeh figure
            browser.close()
    finally:
        if lock.locked() and not released.is_set():
            lock.release()
