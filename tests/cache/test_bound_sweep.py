"""cache/bound_sweep.py over a real log: synthetic traffic served through `llmgw serve` in front
of the intent oracle (answers agree when intents do), then the bound simulated per value."""

from __future__ import annotations

import pytest

from llmgw_kernel import load_policy, open_log
from llmgw_kernel.cache.bound_sweep import sweep_bound
from llmgw_kernel.cache_traffic import intent_labels, make_cache_log

BOUNDS = [0.02, 0.2, 0.5]


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    report = make_cache_log(tmp_path_factory.mktemp("bound-sweep") / "data", n=160, seed=3, policy_threshold=0.99)
    assert report.errors == 0
    con = open_log(report.data_dir)
    yield load_policy(report.policy), con
    con.close()


def test_looser_bounds_serve_more_and_the_sweep_is_deterministic(log):
    policy, con = log
    labels = intent_labels(con)
    # the oracle words each paraphrase's answer a little differently: answers compare by embedding
    rows = sweep_bound(policy, con, BOUNDS, labels, equivalence="embedding")
    assert [r["max_false_hit_rate"] for r in rows] == BOUNDS
    hits = [r["semantic_hits"] for r in rows]
    assert hits == sorted(hits) and hits[-1] > 0, rows  # the traffic is trap-heavy: only 50% is certified
    assert all(r["outcomes"] > 0 and r["considered"] == rows[0]["considered"] for r in rows)
    for r in rows:
        if r["checked_hits"]:
            assert r["est_low"] <= r["est_false_hit_rate"] <= r["est_high"]
        assert r["labelled_false_hit_rate"] is None or 0 <= r["labelled_false_hit_rate"] <= 1
    assert sweep_bound(policy, con, BOUNDS, labels, equivalence="embedding") == rows
