"""The synthetic spend history: ordinary log rows its own policy replays exactly, and on which a
candidate's team budget bites part-way through the month (llmgw_kernel/spend_history.py)."""

from __future__ import annotations

import pytest
import yaml

from llmgw_kernel import load_policy, open_log, replay
from llmgw_kernel.spend_history import POLICY_FILE, make_spend_history


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    return make_spend_history(tmp_path_factory.mktemp("spend") / "data", days=30, start="2026-10-01", seed=0)


@pytest.fixture(scope="module")
def con(history):
    c = open_log(history.data_dir)
    yield c
    c.close()


def _with_budgets(history, *limits: dict) -> dict:
    doc = yaml.safe_load(history.policy.read_text())
    assert "budgets" not in doc
    return {**doc, "budgets": {"timezone": "UTC", "limits": list(limits)}}


def test_a_month_of_ordinary_log_rows(history, con):
    assert history.policy == history.data_dir / POLICY_FILE
    assert load_policy(history.policy).budgets is None
    assert 2000 <= history.rows <= 8000 and history.elapsed_s < 10
    n, teams, first, last, unpriced = con.execute(
        "SELECT count(*), count(DISTINCT team), min(ts), max(ts), count(*) FILTER (WHERE cost_usd IS NULL) FROM requests"
    ).fetchone()
    assert (n, teams, unpriced) == (history.rows, len(history.teams), 0)
    assert history.start <= first and last < history.end and (last - first).days >= 28
    odd = con.execute("""
        SELECT count(*) FROM requests
        WHERE endpoint != 'chat.completions' OR status != 200 OR outcome != 'ok' OR plan[1] != target OR len(plan) != 2
           OR admission IS NOT NULL OR admitted_ts IS NOT NULL OR reserved_usd IS NOT NULL
           OR metadata->>'team' != team OR key_id NOT LIKE 'sha256:%' OR end_user IS NULL
           OR ts_end <= ts OR latency_ms <= 0 OR total_tokens != prompt_tokens + completion_tokens
    """).fetchone()[0]  # fmt: skip
    assert odd == 0
    assert round(con.execute("SELECT sum(cost_usd) FROM requests").fetchone()[0], 6) == pytest.approx(history.cost_usd)


def test_weekends_are_quieter_and_support_has_a_launch_week(con):
    per_day = dict(con.execute("""
        SELECT dayofweek(ts) IN (0, 6) AS weekend, count(*) / count(DISTINCT date_trunc('day', ts))
        FROM requests WHERE team = 'support' GROUP BY weekend
    """).fetchall())  # fmt: skip
    assert per_day[True] < 0.3 * per_day[False]
    spike, ordinary = con.execute("""
        SELECT avg(n) FILTER (WHERE d BETWEEN DATE '2026-10-12' AND DATE '2026-10-16'),
               avg(n) FILTER (WHERE d NOT BETWEEN DATE '2026-10-12' AND DATE '2026-10-16' AND dayofweek(d) NOT IN (0, 6))
        FROM (SELECT CAST(ts AS DATE) AS d, count(*) AS n FROM requests WHERE team = 'support' GROUP BY d)
    """).fetchone()  # fmt: skip
    assert spike > 3 * ordinary


def test_deterministic_given_the_seed(history, tmp_path):
    again = make_spend_history(tmp_path / "again", days=30, start="2026-10-01", seed=0)
    assert (again.rows, again.cost_usd, again.teams) == (history.rows, history.cost_usd, history.teams)
    other = make_spend_history(tmp_path / "other", days=30, start="2026-10-01", seed=1)
    assert other.cost_usd != history.cost_usd


def test_refuses_a_directory_that_already_holds_a_log(history):
    with pytest.raises(FileExistsError):
        make_spend_history(history.data_dir, days=1)


def test_its_own_policy_replays_it_exactly(history, con):
    result = replay(history.policy, con)
    assert result.summary["requests"] == history.rows
    assert result.compare_to_log() == 0, result.summary["differs_from_log"]
    assert result.summary["limits"]["evaluated"] == 0


def test_a_team_budget_cuts_that_team_off_part_way_through_the_month(history, con):
    support = history.teams["support"]["cost_usd"]
    budget = round(support / 2, 2)
    result = replay(_with_budgets(history, {"scope": "team", "name": "support", "usd": budget}), con)
    limits = result.summary["limits"]
    assert limits["spend_prevented_usd"] > 0 and limits["newly_refused"] == limits["refused"] > 0
    [cut] = limits["cutoffs"]
    assert cut["limit"] == f"team 'support' monthly budget of ${budget:,.2f}" and cut["kind"] == "budget_exceeded"
    assert "2026-10-05" < cut["first_refused_at"] < "2026-10-28"

    teams = dict(con.execute("SELECT request_id, team FROM requests").fetchall())
    costs = dict(con.execute("SELECT request_id, cost_usd FROM requests").fetchall())
    d = result.decisions
    refused = d[d["replay_admission"] == "budget_exceeded"]
    assert {teams[r] for r in refused["request_id"]} == {"support"}  # never another team
    others = d[[teams[r] != "support" for r in d["request_id"]]]
    assert others["replay_admission"].isna().all()  # no limit applies to them at all
    ours = d[[teams[r] == "support" for r in d["request_id"]]]
    first = refused["ts"].min()
    assert (ours.loc[ours["ts"] >= first, "replay_admission"] == "budget_exceeded").all()  # from then on, all
    # what the candidate admitted, at the candidate's prices: its weighted draws are its own (the
    # draw hashes the policy version), so a request may land on another target than logged
    admitted = ours.loc[ours["replay_admission"] == "ok", "replay_cost_usd"].sum()
    assert budget <= admitted < budget + d["replay_cost_usd"].max()  # overspends by at most one request
    prevented = sum(costs[r] for r in refused["request_id"])  # the logged cost of what it refused
    assert limits["spend_prevented_usd"] == pytest.approx(prevented, abs=1e-5)


def test_a_replay_of_the_second_half_remembers_the_first(history, con):
    """The month's spend before ``since`` still counts (the limits stage folds it in first): what
    was logged before the window, plus what the candidate admits in it, stops at the budget.
    (Not the whole month's replay: the candidate's weighted draws are its own, so its spend
    before ``since`` differs from the logged spend a replay from ``since`` starts with.)"""
    budget = round(history.teams["support"]["cost_usd"] / 2, 2)
    cand = _with_budgets(history, {"scope": "team", "name": "support", "usd": budget})
    teams = dict(con.execute("SELECT request_id, team FROM requests").fetchall())
    for since in ("2026-10-08", "2026-10-20"):  # before and after the logged spend reaches the budget
        before = con.execute(
            "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE team = 'support' AND ts < CAST(? AS TIMESTAMPTZ)",
            [f"{since} 00:00:00+00"],
        ).fetchone()[0]  # fmt: skip
        d = replay(cand, con, since=since).decisions
        ours = d[[teams[r] == "support" for r in d["request_id"]]]
        admitted = ours.loc[ours["replay_admission"] == "ok", "replay_cost_usd"].sum()
        if before >= budget:
            assert admitted == 0 and (ours["replay_admission"] == "budget_exceeded").all()
        else:
            assert budget <= before + admitted < budget + d["replay_cost_usd"].max()
    assert (
        con.execute(
            "SELECT sum(cost_usd) FROM requests WHERE team = 'support' AND ts < TIMESTAMPTZ '2026-10-08 00:00:00+00'"
        ).fetchone()[0]
        < budget
    )  # fmt: skip  (so both branches above ran)
