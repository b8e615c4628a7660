"""A sampled semantic hit that the route's spend cap leaves unchecked is counted in /metrics
(``llmgw_cache_checks_total{outcome="skipped_cap"}``), as /health counts it, and marked on its own
log row (``cache_verify = 'skipped_cap'``): a real `llmgw serve`,
the official openai SDK, the fake upstream over real HTTP."""

from __future__ import annotations

import uuid

import httpx
from conftest import Gateway, wait_for_rows, wait_model_ready
from prometheus_client.parser import text_string_to_metric_families
from test_cache_bound_live import PROBE, ask, bound_policy, learn, region


def checks(gw: Gateway) -> dict[tuple[str, str], float]:
    """``llmgw_cache_checks_total`` by (route, outcome), as /metrics says."""
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "llmgw_cache_checks_total":
                out[(s.labels["route"], s.labels["outcome"])] = s.value
    return out


def test_checks_skipped_by_the_spend_cap_are_counted_in_metrics(upstream, tmp_path):
    gw = Gateway(tmp_path, bound_policy(upstream.base_url))
    try:
        wait_model_ready(gw)
        ns = f"t-{uuid.uuid4().hex}"
        learn(gw, "capped", ns)  # verify_rate 1, verify_max_usd_per_hour 0: every sampled hit is skipped
        assert ("capped", "skipped_cap") not in checks(gw)
        hits = []
        for _ in range(2):
            h, _, _ = ask(gw, PROBE, "capped", ns)
            assert h["x-llmgw-cache"] == "semantic-hit"
            hits.append(h["x-llmgw-request-id"])
        skipped = region(gw, "capped")["checks_skipped_by_spend_cap"]
        assert skipped == 2
        counted = checks(gw)
        assert counted[("capped", "skipped_cap")] == skipped
        assert ("capped", "ok") not in counted  # nothing was asked upstream
        # each hit's own row says it was sampled and left unchecked (replay and the dashboard read the log)
        ids = ", ".join(f"'{rid}'" for rid in hits)
        rows = wait_for_rows(gw, f"request_id IN ({ids})", n=2)
        assert [(r["cache"], r["cache_verify"]) for r in rows] == [("semantic-hit", "skipped_cap")] * 2
        assert wait_for_rows(gw, "endpoint = 'cache.check'", n=0) == []  # and no check row anywhere
    finally:
        gw.terminate()
