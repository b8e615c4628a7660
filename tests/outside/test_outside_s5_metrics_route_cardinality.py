"""Outside-style: model names a client makes up do not each become new series on `/metrics`.

docs/monitoring.md lists `llmgw_requests_total` (route, model, status) and the latency / time-to-first-token
histograms (route) — the policy's routes, as the Grafana dashboard (deploy/grafana/llmgw.json: "Requests per
second by route") and alerts read them; the budget gauges keep "bounded cardinality", and the dashboards'
route filter lists "the live policy's routes ..., never a model name a client sent that is not a route"
(docs/dashboards.md).

Every distinct `model` a client sends that is no route (a 404 `model_not_found`) gets its own label value:
~38 series each (a counter, two histograms of 15 buckets, their `_created`), kept for the life of the
process. 200 made-up names add ~7,600 lines to every scrape; any client (in open mode, anyone) can grow
the gateway's memory and Prometheus's without bound, one request per series set.
"""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import policy_for

ROUTE_LABEL = re.compile(r'^llmgw_[a-z_]+\{[^}]*route="([^"]*)"')


def _route_labels(metrics: str) -> set[str]:
    return {m.group(1) for line in metrics.splitlines() if (m := ROUTE_LABEL.match(line))}


@pytest.mark.xfail(strict=True, reason="defect: each unknown model a client sends becomes a new route label value")
def test_unknown_models_do_not_grow_the_route_label(make_gateway, upstream) -> None:
    gw = make_gateway()
    routes = set(policy_for(upstream.base_url)["routes"])
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        assert (
            client.post(
                "/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "x"}]}
            ).status_code
            == 200
        )
        lines_before = len(httpx.get(f"{gw.url}/metrics").text.splitlines())
        for i in range(200):
            r = client.post(
                "/chat/completions", json={"model": f"made-up-{i}", "messages": [{"role": "user", "content": "x"}]}
            )
            assert r.status_code == 404
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert "made-up-0" not in metrics  # the 404s are still counted, under a bounded label value
    assert 'status="404"' in metrics
    others = _route_labels(metrics) - routes
    assert len(others) <= 1, sorted(others)[:5]
    assert len(metrics.splitlines()) - lines_before < 200, "each unknown model added series to every scrape"
