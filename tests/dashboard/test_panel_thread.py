"""Panel on a thread of the calling process (LLMGW_DASHBOARD_ISOLATION=thread)."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

pytest.importorskip("panel")

from llmgw_kernel.dashboard.panel_thread import ThreadedPanel  # noqa: E402


def test_threaded_panel_serves_the_pages_and_stops(tmp_path):
    async def main():
        panel = ThreadedPanel(tmp_path, ["localhost:1"])
        port = await panel.start()
        assert panel.alive
        try:
            html = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/overview").read())
        finally:
            await panel.stop()
        return html, panel.alive

    html, alive = asyncio.run(main())
    assert b"bokeh" in html.lower() and b'"token":' in html
    assert not alive


def test_a_page_queries_the_log_before_any_browser_connects(tmp_path):
    """The page's queries start when Panel builds the session (the page's HTML was asked
    for), not at the browser's onload: a plain GET, which never opens the websocket and so
    never fires onload, has queried the log well before the page's first timed refresh
    (10 s). Before, a GET alone was queried only by that refresh, 10 s later."""

    async def main():
        panel = ThreadedPanel(tmp_path, ["localhost:1"])
        port = await panel.start()
        try:
            assert panel.thread is not None
            (ctx,) = panel.thread._stores
            assert not ctx.queries._cache
            await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/cost").read())
            for _ in range(160):  # on a worker thread: up to 8 s, under the 10 s refresh
                if any(key[0] == "options" for key in list(ctx.queries._cache)):
                    break
                await asyncio.sleep(0.05)
            return list(ctx.queries._cache)
        finally:
            await panel.stop()

    keys = asyncio.run(main())
    assert any(key[0] == "options" for key in keys), keys
