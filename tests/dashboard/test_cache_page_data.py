"""The cache page's semantic hits: similarity and threshold always, prompts only when the
log kept bodies (written by the proxy's LogWriter, read back through DuckDB)."""

from __future__ import annotations

import pandas as pd
import pytest
from log_records import chat_record

from llmgw_kernel.dashboard.cache_data import cache
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.queries import LogQueries
from llmgw_kernel.log.writer import LogWriter

NOW = 1_800_000_000.0


def _rec(rid: str, age: float, prompt: str, body_mode: str, cache: str, **extra):
    """A row ``age`` seconds before NOW."""
    return chat_record(rid, NOW - age, prompt, body_mode, cache, **extra)


@pytest.fixture()
def ctx(tmp_path):
    writer = LogWriter(tmp_path)
    writer.append(_rec("src_full", 50, "how do I reset my password", "full", "miss", cost_usd=0.01))
    writer.append(_rec("hit_full", 40, "how can I reset my password?", "full", "semantic-hit",
                       cache_similarity=0.93, cache_threshold=0.9, cache_source="src_full", saved_usd=0.01))  # fmt: skip
    writer.append(_rec("src_hashed", 30, "secret question", "hashed", "miss", cost_usd=0.02))
    writer.append(_rec("hit_hashed", 20, "secret questions", "hashed", "semantic-hit",
                       cache_similarity=0.95, cache_threshold=0.9, cache_source="src_hashed", saved_usd=0.02))  # fmt: skip
    writer.append(_rec("exact", 10, "how do I reset my password", "full", "hit", saved_usd=0.01))
    writer.close()
    c = Context(tmp_path, queries=LogQueries(tmp_path, clock=lambda: NOW))
    yield c
    c.close()


def test_semantic_hits_show_similarity_and_prompts_only_when_bodies_were_logged(ctx):
    data = cache(ctx, Filters(window="1 h"))
    assert (data.cacheable, data.hits, data.semantic_hits) == (5, 3, 2)
    assert data.saved_usd == pytest.approx(0.04)
    rows = data.semantic.set_index("request_id")
    assert list(rows.index) == ["hit_hashed", "hit_full"]  # newest first
    full, hashed = rows.loc["hit_full"], rows.loc["hit_hashed"]
    assert (full["similarity"], full["threshold"], full["source"]) == (0.93, 0.9, "src_full")
    assert full["prompt"] == "how can I reset my password?"
    assert full["source_prompt"] == "how do I reset my password"
    assert hashed["similarity"] == 0.95
    assert pd.isna(hashed["prompt"]) and pd.isna(hashed["source_prompt"])  # hashed bodies: never shown
    by_route = data.by_route.set_index("route").loc["chat"]
    assert (by_route["requests"], by_route["hits"], by_route["semantic_hits"]) == (5, 3, 2)


def test_a_window_without_semantic_hits_has_none_and_their_columns(ctx):
    """The count of semantic hits comes with the per-bucket scan; with none, their query reads
    nothing (LIMIT 0) but still gives the table its columns."""
    data = cache(ctx, Filters(since=NOW - 15, until=NOW))
    assert (data.cacheable, data.hits, data.semantic_hits) == (1, 1, 0)
    assert data.semantic.empty and {"similarity", "threshold", "prompt", "source_prompt"} <= set(data.semantic.columns)
    assert list(data.series.groupby("group")["rate"].max()) == [1.0, 0.0]


def test_namespaces_are_shown_with_a_visible_separator(tmp_path):
    """A namespace's parts are joined by the unit separator (decisions.cache.namespace), which a
    browser draws as a box: the page shows them joined by " · " (per route and on semantic hits)."""
    from llmgw_kernel.decisions.cache import namespace

    ns = namespace(type("S", (), {"namespace": ("key", "team")})(), "chat", "sha256:ab", "search", None)
    assert "\x1f" in ns
    writer = LogWriter(tmp_path)
    writer.append(_rec("src", 30, "how do I reset my password", "full", "miss", cache_namespace=ns))
    writer.append(_rec("hit", 20, "how can I reset my password?", "full", "semantic-hit", cache_namespace=ns,
                       cache_similarity=0.93, cache_threshold=0.9, cache_source="src"))  # fmt: skip
    writer.close()
    ctx = Context(tmp_path, queries=LogQueries(tmp_path, clock=lambda: NOW))
    try:
        data = cache(ctx, Filters(window="1 h"))
    finally:
        ctx.close()
    shown = "route=chat · key=sha256:ab · team=search"
    assert list(data.by_route["namespace"]) == [shown]
    assert list(data.semantic["namespace"]) == [shown]


def test_the_page_shows_semantic_hits_nearest_the_threshold_first_and_flips_the_order(tmp_path):
    """The spot-check is a plain HTML table (a Tabulator cost the browser ~0.3 CPU s), its hits
    nearest their threshold first (the likeliest wrong answers) with their margin above it; the
    order flips in the page. Built without a server: the page is filled at once."""
    import re

    import panel as pn

    from llmgw_kernel.dashboard.pages import load_page_module

    writer = LogWriter(tmp_path)
    for rid, age, similarity, mode in (
        ("near", 30, 0.91, "full"),
        ("mid", 40, 0.93, "hashed"),
        ("far", 20, 0.97, "full"),
    ):
        writer.append(_rec(rid, age, f"prompt of {rid}", mode, "semantic-hit", cache_similarity=similarity,
                           cache_threshold=0.9, cache_source="src", saved_usd=0.01))  # fmt: skip
    writer.close()
    c = Context(tmp_path, queries=LogQueries(tmp_path, clock=lambda: NOW))
    try:
        page = load_page_module("cache").page(c)
        assert page.select(pn.widgets.Tabulator) == [] and page.select(pn.pane.Bokeh) == []
        # the charts are SVG (no Bokeh figure): a bucket's values on hover
        charts = [str(p.object) for p in page.select(pn.pane.HTML) if 'class="llmgw-chart"' in str(p.object)]
        tips = [re.findall(r"<rect class=\"hover\"[^>]*><title>(.*?)</title>", svg, re.S) for svg in charts]
        assert len(tips) == 2 and len(tips[0]) > 1
        assert [t.split("\n", 1)[1] for t in tips[0] if "100.0%" in t] == [
            "hit rate: 100.0%\nsemantic hit rate: 100.0%"
        ]
        assert [t.split("\n", 1)[1] for t in tips[1] if "$0.0000" not in t] == ["saved: $0.0300"]

        def shown() -> tuple[list[str], list[list[str]]]:
            text = next(p.object for p in page.select(pn.pane.HTML) if "llmgw-semantic-hits" in str(p.object))
            header = re.findall(r"<th>(.*?)</th>", text)
            rows = [
                re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", text.split("<tbody>")[1])
            ]
            return header, rows

        header, rows = shown()
        ids = [r[header.index("request_id")] for r in rows]
        assert ids == ["near", "mid", "far"]
        assert [r[header.index("margin")] for r in rows] == ["+0.010", "+0.030", "+0.070"]
        assert [r[header.index("similarity")] for r in rows] == ["0.910", "0.930", "0.970"]
        assert [r[header.index("prompt")] for r in rows] == ["prompt of near", "", "prompt of far"]  # hashed: never
        order = next(w for w in page.select(pn.widgets.RadioButtonGroup) if "newest first" in w.options)
        order.value = "farthest from it first"
        header, rows = shown()
        assert [r[header.index("request_id")] for r in rows] == ["far", "mid", "near"]
        order.value = "newest first"
        header, rows = shown()
        assert [r[header.index("request_id")] for r in rows] == ["far", "near", "mid"]
    finally:
        c.close()
