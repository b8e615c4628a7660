"""Checks of sampled semantic hits (``endpoint = 'cache.check'``) in the routing replay and the
forecast: a check is planned as its hit (live, it asks the plan its hit was given), and it is a
row, not a request — the routing summary's counts and shares and every forecast figure are over
client requests, while the checks' cost is spend within the cost per 1k requests.

The logs: the semantic synthetic log and the same log with a check row after each semantic hit,
written by the live ``check_record`` (tests/semantic_logs.py builds both, once per session; they are
only read here: the reweighted candidate is written under the test's tmp dir)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgw_kernel import replay
from llmgw_kernel.log.reader import open_log
from llmgw_kernel.replay.fold import CHECK
from llmgw_kernel.replay.forecast import check, forecast_for, forecast_of, observed_since

pytest.importorskip("numba")

SHARES = ("routed", "unknown_model", "first_target_share", "logged_first_target_share", "first_target_changed")
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def logs(semantic_logs: tuple[Path, Path]) -> tuple[Path, Path]:
    return semantic_logs


def reweighted(d: Path, out: Path) -> Path:
    """The live policy of the log in ``d`` with every weighted route's weights reversed (other
    first targets), written under ``out``."""
    doc = yaml.safe_load((d / "policy-live.yaml").read_text())
    flipped = 0
    for spec in doc["routes"].values():
        weights = [t.get("weight") for t in spec["targets"]]
        if len(weights) > 1 and None not in weights and len(set(weights)) > 1:
            for t, w in zip(spec["targets"], reversed(weights), strict=True):
                t["weight"] = w
            flipped += 1
    assert flipped, "the synthetic policy has no weighted route to reverse"
    path = out / f"policy-reweighted-{d.name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _checks(r: Any) -> Any:
    return r.decisions[r.decisions["replay_served_by"] == CHECK]


@pytest.mark.parametrize("candidate", ["live", "reweighted"])
def test_a_check_is_planned_as_its_hit(logs, candidate, tmp_path):
    """Under the live policy and under one that draws other first targets, each check's replayed
    plan is its hit's replayed plan (drawn by its own id, ~40% of them would differ)."""
    _, checked = logs
    path = checked / "policy-live.yaml" if candidate == "live" else reweighted(checked, tmp_path)
    r = replay(str(path), str(checked))
    d = r.decisions
    mine = _checks(r)
    assert len(mine) > 100
    con = open_log(str(checked))
    hit_of = dict(
        con.execute("SELECT request_id, cache_source FROM requests WHERE endpoint = 'cache.check'").fetchall()
    )
    con.close()
    hits = d.loc[[hit_of[rid] for rid in mine["request_id"]]]
    assert [list(p) for p in mine["replay_plan"]] == [list(p) for p in hits["replay_plan"]]
    if candidate == "reweighted":  # the candidate really moved first targets, checks' with their hits'
        assert (mine["replay_target"].to_numpy() != mine["logged_target"].to_numpy()).sum() > 20


@pytest.mark.parametrize("candidate", ["live", "reweighted"])
def test_the_routing_summary_counts_requests_not_checks(logs, candidate, tmp_path):
    """The routing summary over the log with checks is the summary over the same log without
    them: routed, shares and first targets changed count client requests."""
    base, checked = logs
    got = {}
    for d in (base, checked):
        path = d / "policy-live.yaml" if candidate == "live" else reweighted(d, tmp_path)
        got[d] = replay(str(path), str(d)).summary["routing"]
    assert {k: got[checked][k] for k in SHARES} == {k: got[base][k] for k in SHARES}
    assert got[checked]["routed"] == 4000


def test_the_forecast_counts_requests_and_spends_checks(logs):
    """Forecast and observed figures over a log with checks: every share as without them, the
    request count 4,000 on both sides, and cost per 1k = (requests' + checks' cost) / 4,000."""
    base, checked = logs
    live = str(checked / "policy-live.yaml")
    r = replay(live, str(checked))
    plain = forecast_of(replay(str(base / "policy-live.yaml"), str(base)), {"since": None})
    forecast = forecast_of(r, {"since": None})
    observed = observed_since(checked, "2000-01-01")
    without = observed_since(base, "2000-01-01")
    n_checks = len(_checks(r))
    assert forecast["basis"]["requests"] == observed["basis"]["requests"] == r.summary["requests"] == 4000
    assert forecast["basis"]["checks"] == observed["basis"]["checks"] == n_checks > 100
    assert forecast["basis"]["unpriced_checks"] == observed["basis"]["unpriced_checks"] == 0
    assert forecast["groups"] == plain["groups"] and observed["groups"] == without["groups"]
    for name, f in plain["figures"].items():
        if name != "cost_per_1k_usd":
            assert forecast["figures"][name]["value"] == f["value"], name
            assert observed["figures"][name]["value"] == without["figures"][name]["value"], name
    cost = forecast["figures"]["cost_per_1k_usd"]
    assert cost["n"] == observed["figures"]["cost_per_1k_usd"]["n"] == 4000
    assert cost["value"] == pytest.approx(r.summary["cost_per_1k_requests"], abs=1e-4)
    checks_usd = float(_checks(r)["logged_cost_usd"].sum())
    assert r.summary["checks_usd"] == pytest.approx(checks_usd, abs=1e-6) and checks_usd > 0
    assert cost["value"] == pytest.approx(plain["figures"]["cost_per_1k_usd"]["value"] + checks_usd / 4, rel=1e-9)
    logged = observed["figures"]["cost_per_1k_usd"]["value"]
    assert logged == pytest.approx(without["figures"]["cost_per_1k_usd"]["value"] + checks_usd / 4, rel=1e-9)
    # the live policy's forecast of its own log is its observation: every figure, cost included
    rows = {row["figure"]: row for row in check(forecast, observed)}
    assert rows["cost_per_1k_usd"]["diff"] == pytest.approx(0, abs=1e-6)
    assert all(row["within"] for row in rows.values()), [row for row in rows.values() if not row["within"]]


def test_a_forecast_clusters_a_check_with_its_hit(logs):
    """forecast_for groups a check with its hit's team (else key, else the hit): the cost figure
    has as many clusters as without checks, and the same value as the replay's summary."""
    base, checked = logs
    got = {d: forecast_for(str(d / "policy-live.yaml"), str(d), *EVER) for d in (base, checked)}
    with_checks, plain = got[checked], got[base]
    assert with_checks is not None and plain is not None
    cost, plain_cost = with_checks["figures"]["cost_per_1k_usd"], plain["figures"]["cost_per_1k_usd"]
    assert cost["clusters"] == plain_cost["clusters"] and cost["n"] == plain_cost["n"] == 4000
    assert cost["value"] > plain_cost["value"]
