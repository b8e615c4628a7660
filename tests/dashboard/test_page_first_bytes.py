"""A page's first bytes — its "Loading…" line — reach the browser before Panel has made the
page's session (page_handler.py): here the session's making is held until the client has them.

Before, Panel sent a page's HTML only once the session was made (the page's Python: frame,
filter bar, body), so the "Loading…" line waited for all of it (the overview's first paint
0.8–1.15 s on a quiet machine, 3–4 s at load 14). The rest of the page follows as Panel renders
it: one document, one "Loading…" line.
"""

from __future__ import annotations

import http.client
import threading
import zlib

import pytest

pytest.importorskip("panel")

from llmgw_kernel.dashboard import frame  # noqa: E402
from llmgw_kernel.dashboard.panel_thread import PanelThread  # noqa: E402

WINDOW = "since=2020-01-01T00:00:00&until=2020-01-02T00:00:00"
PREFIX = frame.BOOT_PREFIX.encode()


@pytest.fixture()
def held(tmp_path, monkeypatch):
    """A dashboard server whose next session is made only once ``release`` is set (or 30 s
    passed); ``outcome["released"]``: whether it was set while the session waited."""
    release, outcome = threading.Event(), {}
    made = frame.Frame.__init__

    def held_init(self, *args, **kwargs):
        if "released" not in outcome:
            outcome["released"] = release.wait(30)
        made(self, *args, **kwargs)

    monkeypatch.setattr(frame.Frame, "__init__", held_init)
    started = threading.Event()
    server = PanelThread(tmp_path, ["*"], lambda port, error: started.set())
    server.start()
    assert started.wait(60) and server.port is not None, "the dashboard server did not start"
    yield server, release, outcome
    release.set()
    server.stop()


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_the_loading_line_comes_before_the_session_is_made(held, encoding):
    server, release, outcome = held
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", f"/overview?{WINDOW}", headers={"Accept-Encoding": encoding})
    resp = conn.getresponse()
    assert resp.status == 200
    gzipped = resp.getheader("Content-Encoding") == "gzip"
    assert gzipped == (encoding == "gzip")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    first = b""
    while len(first) < len(PREFIX):  # each read returns what has arrived (chunked)
        chunk = resp.read1(65536)
        assert chunk, f"the response ended after {first!r}"
        first += inflate.decompress(chunk) if inflate else chunk
    assert first.startswith(PREFIX)
    release.set()  # only now may the session be made
    rest = resp.read()
    page = (first + (inflate.decompress(rest) + inflate.flush() if inflate else rest)).decode()
    conn.close()
    assert outcome["released"] is True, "the first bytes came only after the session was made"
    # one document: the constant start once, then Panel's page (its scripts, the session's token)
    assert page.count("<!DOCTYPE") == 1 and page.count('id="llmgw-boot"') == 1
    assert page.index("data-loading") < page.index("<script")
    assert "Bokeh" in page and page.rstrip().endswith("</html>")


def test_a_page_loads_only_the_scripts_its_models_need(tmp_path):
    """No page has a Tabulator or a WebGL figure, so no page loads Tabulator's, luxon's or
    Bokeh's WebGL bundle (~0.7 of ~3.5 MB of JavaScript the browser parsed and ran on every
    page load: pn.extension("tabulator") and Bokeh's default components); Bokeh's and Panel's
    own bundles still load (the browser tests: every page renders, no console error)."""
    started = threading.Event()
    server = PanelThread(tmp_path, ["*"], lambda port, error: started.set())
    server.start()
    try:
        assert started.wait(60) and server.port is not None, "the dashboard server did not start"
        for path in ("/overview", "/policy"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("GET", f"{path}?{WINDOW}")
            resp = conn.getresponse()
            page = resp.read().decode()
            assert resp.status == 200
            for name in ("bokeh.min.js", "bokeh-widgets.min.js", "bokeh-tables.min.js", "panel.min.js"):
                assert name in page, f"{path} lost {name}"
            for name in ("tabulator", "luxon", "bokeh-gl"):
                assert name not in page, f"{path} loads {name}"
    finally:
        server.stop()
