"""The overview page renders what the store returns (built without a server, so the page is
filled at once instead of after the browser loads it)."""

from __future__ import annotations

import re

import pytest

pn = pytest.importorskip("panel")

from llmgw_kernel.dashboard.context import Context  # noqa: E402
from llmgw_kernel.dashboard.frame import FilterForm  # noqa: E402
from llmgw_kernel.dashboard.pages import PAGES, build_apps, load_page_module  # noqa: E402
from llmgw_kernel.dashboard.queries import LogQueries  # noqa: E402
from llmgw_kernel.log.record import RequestRecord  # noqa: E402
from llmgw_kernel.log.writer import LogWriter  # noqa: E402

NOW = 1_800_000_000.0


@pytest.fixture()
def store(tmp_path):
    writer = LogWriter(tmp_path)
    for i in range(3):
        rec = RequestRecord(f"req_page_{i}", NOW - 60 * i, "chat.completions")
        rec.route, rec.status, rec.outcome, rec.latency_ms = "demo", 200, "ok", 12.5
        rec.usage = {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002}
        rec.cost_usd = 0.0025
        writer.append(rec)
    for i, kind in enumerate(("hit", "semantic-hit", "miss")):  # a cached route's requests
        rec = RequestRecord(f"req_cached_{i}", NOW - 30 - i, "chat.completions")
        rec.route, rec.status, rec.outcome, rec.latency_ms, rec.cache = "cached", 200, "ok", 1.0, kind
        rec.cost_usd, rec.saved_usd = (0.0, 0.01) if kind != "miss" else (0.01, None)
        writer.append(rec)
    writer.close()
    ctx = Context(tmp_path, queries=LogQueries(tmp_path, clock=lambda: NOW))
    yield ctx
    ctx.close()


def _find(viewable, kind):
    return [o for o in viewable.select(kind)]


def test_page_shows_the_store_numbers(store):
    overview = load_page_module("overview")
    page = overview.page(store)
    html = next(p.object for p in _find(page, pn.pane.HTML) if "data-kpi" in p.object)
    assert 'data-kpi="requests"><div class="kpi-value">6<' in html
    assert 'data-kpi="prompt_tokens"><div class="kpi-value">3,000<' in html
    assert 'data-kpi="cost"><div class="kpi-value">$0.0175<' in html
    assert (
        'data-kpi="cache_hits"><div class="kpi-value">2</div><div class="kpi-label">cache hits (66.7%; 1 semantic)'
        in html
    )
    assert 'data-kpi="saved"><div class="kpi-value">$0.0200<' in html
    # the tables are plain HTML (a Tabulator costs the browser ~0.3 CPU s each: html_table.py)
    assert _find(page, pn.widgets.Tabulator) == []
    recent = next(p.object for p in _find(page, pn.pane.HTML) if "llmgw-recent" in p.object)
    rows = re.findall(r"<tr>(.*?)</tr>", recent.split("<tbody>")[1])
    assert [re.findall(r"<td[^>]*>(.*?)</td>", r)[1] for r in rows][:2] == [  # each a link to its request page
        '<a href="/request?id=req_page_0">req_page_0</a>', '<a href="/request?id=req_cached_0">req_cached_0</a>',
    ]  # fmt: skip
    header = re.findall(r"<th>(.*?)</th>", recent)
    assert re.findall(r"<td[^>]*>(.*?)</td>", rows[1])[header.index("cache")] == "hit"
    assert "data-ready" in next(p.object for p in _find(page, pn.pane.HTML) if "status" in p.object)
    form = _find(page, FilterForm)[0]  # the filter bar: one plain-HTML model (frame.FilterForm)
    form.window = "15 min"
    html = next(p.object for p in _find(page, pn.pane.HTML) if "data-kpi" in p.object)
    assert "last 15 min" in html


def test_every_page_is_found_and_builds(tmp_path):
    apps, stores = build_apps(tmp_path)
    assert set(apps) == set(PAGES) and "/" in apps
    for app in apps.values():
        assert isinstance(app(), pn.viewable.Viewable)
    for s in stores:
        s.close()
