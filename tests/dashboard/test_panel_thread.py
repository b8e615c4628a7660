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
