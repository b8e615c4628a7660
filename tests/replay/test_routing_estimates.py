"""The candidate's latency quantiles are simulated on a systematic sample of large windows
(``routing_estimates.SIMULATED_MAX``): the sample's quantiles are those of simulating exactly
the sampled requests, every other figure is the whole window's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.replay import load_window
from llmgw_kernel.replay import routing_estimates as est
from llmgw_kernel.replay.routing_stage import decide_routes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("estimates") / "log"
    replay_scale.generate(d, 3000, seed=9, chunk=1500)
    return d


def test_a_large_window_simulates_a_systematic_sample(synthetic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(replay_scale.policy_doc("routing"))
    window = load_window(str(synthetic))
    decided = decide_routes(policy, window)
    codes, plans = decided.plan_codes, decided.plans
    whole = est.estimate_coded(policy, window, codes, plans)
    monkeypatch.setattr(est, "SIMULATED_MAX", 500)
    sampled = est.estimate_coded(policy, window, codes, plans)
    routed = np.flatnonzero(np.asarray([bool(p) for p in plans] + [False])[codes])
    rows = est.simulated_rows(routed)
    assert len(rows) == 500 and len(set(rows.tolist())) == 500
    assert np.array_equal(rows, routed[(np.arange(500) * len(routed)) // 500])
    only = np.full(len(codes), -1, np.int32)
    only[rows] = codes[rows]
    monkeypatch.setattr(est, "SIMULATED_MAX", 10**9)
    of_sample = est.estimate_coded(policy, window, only, plans)
    assert (sampled["latency_ms_p50"], sampled["latency_ms_p95"]) == (
        of_sample["latency_ms_p50"],
        of_sample["latency_ms_p95"],
    )
    exact = {k: v for k, v in whole.items() if k not in ("latency_ms_p50", "latency_ms_p95")}
    assert {k: v for k, v in sampled.items() if k not in ("latency_ms_p50", "latency_ms_p95")} == exact
    assert sampled["latency_ms_p50"] != whole["latency_ms_p50"] or sampled["latency_ms_p95"] != whole["latency_ms_p95"]
