"""The cache page's semantic hits: similarity and threshold always, prompts only when the
log kept bodies (written by the proxy's LogWriter, read back through DuckDB)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmgw_kernel.dashboard.cache_data import cache
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.queries import LogQueries
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter

NOW = 1_800_000_000.0


def _rec(rid: str, age: float, prompt: str, body_mode: str, cache: str, **extra) -> RequestRecord:
    rec = RequestRecord(rid, NOW - age, "chat.completions")
    rec.route, rec.status, rec.outcome, rec.latency_ms, rec.cache = "chat", 200, "ok", 1.0, cache
    rec.body_mode = body_mode
    rec.request_raw = json.dumps({"model": "chat", "messages": [{"role": "user", "content": prompt}]}).encode()
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


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
