"""The composed replay: routing, admission, cache and cost decided together, as live serving
decides them — over traffic served by a real `llmgw serve` with a team budget that cuts the
team off part way, a weighted route between a cheap and a dear target, and an exact cache.

What each test pins down (each failed on the independent stages this replaced):
- the live policy reproduces every decision, and the replayed cost of every request equals
  its logged cost;
- a refused request never reaches the cache (no hit, no store);
- a cheaper route moves the budget's cut-off later (limits read the candidate's costs);
- turning the cache off spends more and cuts the team off earlier (hits cost nothing);
- the summary's cost is net of hits and refusals.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import Gateway, policy_for, wait_for_rows

from llmgw_kernel import replay

# the fake answers 11 prompt + 7 completion tokens: $0.0018 on gpt-4o, $0.00018 on gpt-4o-mini
DEAR = {"input_per_1m": 100.0, "output_per_1m": 100.0}
CHEAP = {"input_per_1m": 10.0, "output_per_1m": 10.0}
BUDGET = 0.02  # ~11 answers at the live 50/50 mix of dear and cheap, ~110 at cheap only
N = 160


def composed_policy(upstream_url: str) -> dict:
    policy = policy_for(upstream_url)
    policy["routes"]["split"]["targets"][0]["weight"] = 50
    policy["routes"]["split"]["targets"][1]["weight"] = 50
    policy["pricing"] = {"gpt-4o": DEAR, "gpt-4o-mini": CHEAP}
    policy["cache"] = {"exact": {"ttl_s": 3600}}
    policy["budgets"] = {
        "timezone": "UTC",
        "default_max_tokens": 7,
        "limits": [{"scope": "team", "name": "t", "usd": BUDGET, "window": "day", "mode": "hard"}],
    }
    return policy


@pytest.fixture(scope="module")
def served(composed_served):
    """The log of :func:`serve_composed`, served once per session (tests/conftest.py:
    test_fold_kernel reads it too) and only read."""
    return composed_served


def serve_composed(upstream_url: str, root: Path) -> tuple[Gateway, list[dict]]:
    """N requests of team t, one in four repeating an earlier prompt (an exact hit), one by one,
    through a real ``llmgw serve`` in ``root``; the stopped gateway and its rows."""
    gw = Gateway(root, composed_policy(upstream_url))
    try:
        with httpx.Client(base_url=gw.base_url, timeout=20) as c:
            for i in range(N):
                prompt = f"question {i // 4 * 4 if i % 4 == 3 else i}"
                r = c.post(
                    "/chat/completions",
                    json={"model": "split", "max_tokens": 7, "messages": [{"role": "user", "content": prompt}]},
                    headers={"x-llmgw-metadata": '{"team": "t"}'},
                )
                assert r.status_code in (200, 429), r.text
        rows = wait_for_rows(gw, "true", N)
        assert len(rows) == N
    finally:
        gw.terminate()
    return gw, rows


def test_the_live_policy_reproduces_every_decision_and_every_cost(served):
    gw, rows = served
    result = replay(gw.policy_path, gw.data_dir)
    assert result.summary["differs_from_log"] == {"routing": 0, "limits": 0, "cache": 0, "any": 0}
    d = result.decisions
    logged = {r["request_id"]: r["cost_usd"] for r in rows}
    replayed = d["replay_cost_usd"].to_dict()
    assert all(replayed[rid] == pytest.approx(c or 0.0, abs=1e-12) for rid, c in logged.items())
    refused = sum(1 for r in rows if r["admission"] == "budget_exceeded")
    hits = sum(1 for r in rows if r["cache"] == "hit")
    assert refused > 20 and hits > 3  # the traffic exercises both
    out = result.summary["outcome"]
    assert (out["refused"], out["served_from_cache"]) == (refused, hits)
    assert result.summary["cost_usd"] == pytest.approx(sum(c or 0 for c in logged.values()), abs=1e-9)


def test_a_refused_request_never_reaches_the_cache(served):
    gw, _ = served
    d = replay(gw.policy_path, gw.data_dir).decisions
    refused = d[d["replay_admission"] == "budget_exceeded"]
    assert len(refused) > 0
    assert refused["replay_cache"].isna().all()
    assert (refused["replay_cost_usd"] == 0).all()
    # and nothing it would have stored answers a later request
    assert not set(d["replay_cache_source"].dropna()) & set(refused.index)


def test_a_cheaper_route_moves_the_cut_off_later(served):
    gw, _ = served
    live = replay(gw.policy_path, gw.data_dir)
    cheap = composed_policy("http://127.0.0.1:9")
    cheap["routes"]["split"]["targets"][0]["weight"] = 100
    cheap["routes"]["split"]["targets"][1]["weight"] = 0
    result = replay(cheap, gw.data_dir)
    before, after = live.summary["limits"], result.summary["limits"]
    assert after["budget_exceeded"] < before["budget_exceeded"]
    assert result.summary["outcome"]["served_upstream"] > live.summary["outcome"]["served_upstream"]
    # the team still never spends past its budget (plus one request's worst case)
    assert result.summary["cost_usd"] <= BUDGET + 0.01


def test_turning_the_cache_off_spends_more_and_cuts_off_earlier(served):
    gw, _ = served
    # both candidates route everything to one target: a weighted draw hashes the policy
    # version, so two policies with a 50/50 split would draw differently
    cached = composed_policy("http://127.0.0.1:9")
    cached["routes"]["split"]["targets"][0]["weight"] = 100
    cached["routes"]["split"]["targets"][1]["weight"] = 0
    cached["budgets"]["limits"][0]["usd"] = BUDGET / 5
    uncached = {k: v for k, v in cached.items() if k != "cache"}
    with_cache, without = replay(cached, gw.data_dir), replay(uncached, gw.data_dir)
    assert with_cache.summary["outcome"]["served_from_cache"] > 0
    assert without.summary["outcome"]["served_from_cache"] == 0
    assert without.summary["limits"]["budget_exceeded"] > with_cache.summary["limits"]["budget_exceeded"]
    first = {c["limit"]: c["first_refused_at"] for c in with_cache.summary["limits"]["cutoffs"]}
    sooner = {c["limit"]: c["first_refused_at"] for c in without.summary["limits"]["cutoffs"]}
    assert all(sooner[k] <= first[k] for k in first)
    assert without.decisions["replay_cache"].isna().all()


def test_the_summary_cost_is_net_of_hits_and_refusals(served):
    gw, _ = served
    result = replay(gw.policy_path, gw.data_dir)
    d = result.decisions
    by = d["replay_served_by"]
    assert set(by.dropna()) <= {"upstream", "cache", "refused"}
    assert (d.loc[by == "cache", "replay_cost_usd"] == 0).all()
    assert d.loc[by == "cache", "replay_saved_usd"].gt(0).all()
    assert result.summary["cost_usd"] == pytest.approx(d["replay_cost_usd"].sum(), abs=1e-9)
    assert result.summary["basis"]["price_source"]["local/gpt-4o-mini"] == "policy"
