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
import time

import httpx
import yaml
from conftest import policy_for

ROUTE_LABEL = re.compile(r'^llmgw_[a-z_]+\{[^}]*route="([^"]*)"')


def _route_labels(metrics: str) -> set[str]:
    return {m.group(1) for line in metrics.splitlines() if (m := ROUTE_LABEL.match(line))}


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


def _requests_total(metrics: str, route: str, status: int) -> float:
    """The sum of ``llmgw_requests_total`` over models for one route label value and status."""
    prefix, total = "llmgw_requests_total{", 0.0
    for line in metrics.splitlines():
        if line.startswith(prefix) and f'route="{route}"' in line and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_unknown_models_are_counted_under_no_route_and_a_reloaded_route_under_its_name(make_gateway, upstream) -> None:
    """Every 404 is still counted (route ""), and a route a reload adds is a label value of its own
    (the label's values follow the policies served, not a list fixed at start)."""
    policy = policy_for(upstream.base_url)
    gw = make_gateway(policy)
    send = lambda model: httpx.post(  # noqa: E731
        f"{gw.base_url}/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]}
    )
    assert [send(f"nope-{i}").status_code for i in range(5)] == [404] * 5
    assert send("later").status_code == 404
    assert _requests_total(httpx.get(f"{gw.url}/metrics").text, "", 404) == 6
    version = httpx.get(f"{gw.url}/health").json()["policy_version"]
    policy["routes"]["later"] = {"targets": [{"provider": "demo", "model": "demo-a"}]}
    gw.policy_path.write_text(yaml.safe_dump(policy))
    deadline = time.monotonic() + 60
    while httpx.get(f"{gw.url}/health").json()["policy_version"] == version and time.monotonic() < deadline:
        time.sleep(0.2)
    assert send("later").status_code == 200
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert _requests_total(metrics, "later", 200) == 1
    assert 'llmgw_request_duration_seconds_count{route="later"} 1.0' in metrics
    assert _requests_total(metrics, "", 404) == 6 and "nope-" not in metrics
