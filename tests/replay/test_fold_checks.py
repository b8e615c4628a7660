"""A check of a sampled semantic hit (``endpoint = 'cache.check'``, proxy/cache_verify.py) in replay:
never admitted (no budget reservation, no rate-limit slot), never looked up or stored, its cost
committed to the hit's budgets when it finished — if the candidate served that hit from the
semantic cache too. The Python fold and the compiled fold decide it alike, field by field.

The log: the semantic synthetic log (cache/synthetic_log.py, written through the real log
writer by the live decision core), and the same log with a check row written after each
semantic hit, built by the live ``check_record`` (tests/semantic_logs.py, once per session)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_fold_kernel import assert_same, composer

from llmgw_kernel import replay
from llmgw_kernel.log.record import CHECK_ENDPOINT
from llmgw_kernel.replay.fold import CHECK, Folded
from llmgw_kernel.replay.fold_kernel import run_compiled

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.fixture(scope="module")
def logs(semantic_logs: tuple[Path, Path]) -> tuple[Path, Path]:
    """(the semantic log, the same log with a check row after every semantic hit): built once per
    session (tests/semantic_logs.py, the ``semantic_logs`` fixture), only read here."""
    return semantic_logs


def live(d: Path) -> dict[str, Any]:
    return yaml.safe_load((d / "policy-live.yaml").read_text())


def limited(d: Path) -> dict[str, Any]:
    """Team budgets that refuse part way through, and a key rpm that refuses."""
    doc = live(d)
    doc["budgets"] = {"limits": [{"scope": "team", "usd": 1.0, "window": "day"}]}
    doc["rate_limits"] = [{"scope": "key", "rpm": 1000}]
    return doc


def checks_of(c: Any) -> list[int]:
    return [i for i, e in enumerate(c.window["endpoint"]) if e == CHECK_ENDPOINT]


@pytest.mark.parametrize("policy", [live, limited])
def test_both_folds_decide_checks_alike(logs, tmp_path, policy):
    _, checked = logs
    c = composer(checked, policy(checked), tmp_path)
    out = assert_same(c)
    rows = checks_of(c)
    assert len(rows) > 100
    assert {out.served_by[i] for i in rows} == {CHECK}
    assert all(out.admission[i] is None and out.cache[i] is None for i in rows)
    charged = [out.cost[i] for i in rows if out.cost[i]]
    assert charged and len(charged) <= len(rows)


def test_a_check_is_charged_only_when_its_hit_is_a_semantic_hit(logs, tmp_path):
    """Live, every hit with a check row was a semantic hit: the live policy charges every check
    its logged cost; a candidate that serves none of them from the semantic cache charges none."""
    _, checked = logs
    doc = live(checked)
    c = composer(checked, doc, tmp_path)
    out = c.run(compiled=False)
    logged, plans = list(c.window["cost_usd"]), list(c.window["plan"])
    # on its logged plan, a check costs its logged tokens at the policy's price: what it cost live
    # (every check: it is planned as its hit, test_routing_plans_a_check_as_its_hit)
    rows = [i for i in checks_of(c) if list(plans[i]) == c.plans[i]]
    assert len(rows) > 80
    assert [out.cost[i] for i in rows] == [logged[i] for i in rows]
    doc["cache"]["semantic"]["threshold"] = 0.9999
    for compiled in (False, True):
        c = composer(checked, doc, tmp_path)
        out = c.run(compiled=False) if not compiled else run_compiled(c)
        assert out is not None
        assert all(out.cost[i] == 0.0 for i in checks_of(c))


def _decisions(out: Folded, n: int) -> list[tuple[Any, ...]]:
    return [(out.admission[i], out.admission_reason[i], out.cache_kind[i], out.served_by[i]) for i in range(n)]


@pytest.mark.parametrize("compiled", [False, True])
def test_a_check_takes_no_rate_slot_and_spends_the_hits_budget(logs, tmp_path, compiled):
    """With rate limits only, every request is decided as on the log without checks (a check
    takes no slot); with a team budget, the checks' spend moves the cut-off earlier."""
    base, checked = logs

    def fold(d: Path, doc: dict[str, Any]) -> tuple[Any, Folded]:
        c = composer(d, doc, tmp_path)
        got = run_compiled(c) if compiled else c.run(compiled=False)
        assert got is not None
        return c, got

    rates = live(base)
    rates["rate_limits"] = [{"scope": "key", "rpm": 1000}]
    c0, plain = fold(base, rates)
    c1, with_checks = fold(checked, rates)
    requests = [i for i, e in enumerate(c1.window["endpoint"]) if e != CHECK_ENDPOINT]
    assert list(c0.window["request_id"]) == [c1.window["request_id"][i] for i in requests]
    assert _decisions(plain, c0.n) == [_decisions(with_checks, c1.n)[i] for i in requests]
    assert plain.admission.count("rate_limited") > 50

    budget = live(base)
    budget["budgets"] = {"limits": [{"scope": "team", "usd": 1.0, "window": "day"}]}
    c0, plain = fold(base, budget)
    c1, with_checks = fold(checked, budget)
    first = {}
    for c, out in ((c0, plain), (c1, with_checks)):
        first[id(out)] = min(c.window["ts"][i] for i, a in enumerate(out.admission) if a == "budget_exceeded")
    assert first[id(with_checks)] < first[id(plain)]


def test_the_summary_counts_no_check_as_a_request_and_spends_its_cost(logs, tmp_path):
    _, checked = logs
    doc = limited(checked)
    path = tmp_path / "policy-limited.yaml"  # beside the shared log, never in it
    path.write_text(yaml.safe_dump(doc))
    r = replay(str(path), str(checked))
    s = r.summary
    n_checks = int((r.decisions["replay_served_by"] == CHECK).sum())
    assert n_checks > 100 and s["requests"] == len(r.decisions) - n_checks == 4000
    assert s["outcome"]["checks"] == n_checks
    o = s["outcome"]
    assert o["served_upstream"] + o["served_from_cache"] + o["refused"] + o["unknown_model"] + o["not_routed"] == 4000
    mine = r.decisions[r.decisions["replay_served_by"] == CHECK]
    assert s["checks_usd"] == pytest.approx(mine["replay_cost_usd"].sum(), abs=1e-6) and s["checks_usd"] > 0
    upstream = r.decisions.loc[r.decisions["replay_served_by"] == "upstream", "replay_cost_usd"].sum()
    assert s["cost_usd"] == pytest.approx(upstream + s["checks_usd"], abs=2e-6)
    assert s["cost_per_1k_requests"] == pytest.approx(s["cost_usd"] / 4000 * 1000, abs=1e-6)
    assert s["limits"]["evaluated"] <= 4000  # no check is evaluated by a limit
    assert mine["replay_admission"].isna().all() and mine["replay_cache"].isna().all()


def test_the_live_policy_replays_a_log_with_checks_with_no_difference(logs):
    _, checked = logs
    r = replay(str(checked / "policy-live.yaml"), str(checked))
    differs = r.summary["differs_from_log"]
    assert differs["limits"] == differs["cache"] == 0, differs
    assert r.summary["checks_usd"] > 0


def test_routing_plans_a_check_as_its_hit(logs):
    """Live, a check asks the hit's plan (``check_record`` copies it); a weighted route's draw of
    the check's own request id picks another first target for ~40% of them."""
    _, checked = logs
    r = replay(str(checked / "policy-live.yaml"), str(checked))
    assert r.summary["differs_from_log"]["routing"] == 0
    logged = r.decisions.loc[r.decisions["replay_served_by"] == CHECK, "logged_cost_usd"]
    assert r.summary["checks_usd"] == pytest.approx(float(logged.sum()), abs=1e-6)  # each at its logged cost
