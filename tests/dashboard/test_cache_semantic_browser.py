"""The cache page's spot-check of semantic hits, in a browser, over a log that has them.

The demo traffic's cache is exact (test_pages: the table is empty), so here the log is written
as the proxy writes it (``RequestRecord`` through the ``LogWriter``, read back through DuckDB):
four semantic hits at different margins above their thresholds, one of them logged with hashed
bodies, an exact hit and its source. The dashboard is served by the real Panel server
(``PanelThread``) and read in headless Chromium: the table's rows, their order (nearest the
threshold first: the likeliest wrong answers), the margin column, and the order flipping in
the page.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS
from log_records import chat_record

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")

pytest.importorskip("panel")
pytest.importorskip("playwright")

from llmgw_kernel.dashboard.panel_thread import PanelThread  # noqa: E402
from llmgw_kernel.log.writer import LogWriter  # noqa: E402

#: request id, seconds ago, similarity, threshold, body mode (newest: "far", then "near", ...)
HITS = (("near", 300, 0.905, 0.9, "full"), ("mid", 400, 0.88, 0.85, "hashed"),
        ("far", 200, 0.99, 0.9, "full"), ("mid2", 500, 0.94, 0.9, "full"))  # fmt: skip


def _rec(rid: str, ts: float, prompt: str, body_mode: str, cache: str, **extra):
    return chat_record(rid, ts, prompt, body_mode, cache, team="search", latency_ms=3.0, **extra)


@pytest.fixture()
def panel(tmp_path):
    now = time.time()
    writer = LogWriter(tmp_path)
    writer.append(_rec("src", now - 600, "how do I reset my password", "full", "miss", cost_usd=0.01))
    for rid, age, similarity, threshold, mode in HITS:
        writer.append(_rec(rid, now - age, f"question {rid}", mode, "semantic-hit", cache_similarity=similarity,
                           cache_threshold=threshold, cache_source="src", saved_usd=0.01))  # fmt: skip
    writer.append(_rec("exact", now - 100, "how do I reset my password", "full", "hit", saved_usd=0.01))
    writer.close()
    started = threading.Event()
    server = PanelThread(tmp_path, ["*"], lambda port, error: started.set())
    server.start()
    assert started.wait(60) and server.port is not None, "the dashboard server did not start"
    window = "&".join(
        f"{k}={datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%S}"
        for k, t in (("since", now - 3600), ("until", now + 60))
    )
    yield f"http://127.0.0.1:{server.port}/cache?{window}"
    server.stop()


def test_the_spot_check_lists_semantic_hits_nearest_the_threshold_first_and_flips(panel):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(panel, timeout=120_000)
            page.wait_for_selector("[data-ready]", state="attached", timeout=120_000)
            expect(page.locator('[data-kpi="semantic_hits"] .kpi-value')).to_have_text("4", timeout=30_000)
            table = page.locator("table.llmgw-semantic-hits")
            expect(table).to_have_attribute("data-rows", "4", timeout=30_000)
            header = table.locator("thead th").all_inner_texts()
            # the margin (similarity - threshold) right after the threshold
            assert header.index("margin") == header.index("threshold") + 1
            assert header.index("threshold") == header.index("similarity") + 1

            def column(name: str) -> list[str]:
                rows = table.locator("tbody tr").all()
                return [r.locator("td").nth(header.index(name)).inner_text().strip() for r in rows]

            assert column("request_id") == ["near", "mid", "mid2", "far"]  # the smallest margin first
            assert column("margin") == ["+0.005", "+0.030", "+0.040", "+0.090"]
            assert column("similarity") == ["0.905", "0.880", "0.940", "0.990"]  # not the similarity's order
            assert column("prompt") == ["question near", "", "question mid2", "question far"]  # hashed: never shown
            for order, ids in (
                ("farthest from it first", ["far", "mid2", "mid", "near"]),
                ("newest first", ["far", "near", "mid", "mid2"]),
                ("nearest the threshold first", ["near", "mid", "mid2", "far"]),
            ):
                page.get_by_role("button", name=order).click()
                ids_shown = table.locator(f"tbody tr td:nth-child({header.index('request_id') + 1})")
                expect(ids_shown).to_have_text(ids, timeout=30_000)  # every row, in order (no query: at once)
            assert not errors, errors
        finally:
            browser.close()
