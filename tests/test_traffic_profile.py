"""`llmgw traffic --profile demo` (issue 13, item 6): realistic synthetic traffic — teams with
their own keys, users and time-of-day shape, repeated and paraphrased prompts, targets that
differ in price, latency and failure rate — served through a real server, and replayed by its
own policy with no difference."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from llmgw_kernel import open_log, replay
from llmgw_kernel.traffic_profile import PROFILES, plan


def test_the_plan_is_deterministic_and_shaped_by_team() -> None:
    a, b = plan(PROFILES["demo"], 800, seed=3), plan(PROFILES["demo"], 800, seed=3)
    assert a == b and a != plan(PROFILES["demo"], 800, seed=4)
    assert [p.hour for p in a] == sorted(p.hour for p in a)  # one compressed day, sent in hour order
    hours = {team: statistics.mean(p.hour for p in a if p.team == team) for team in ("analytics", "support")}
    assert hours["analytics"] < 8 < hours["support"]  # a nightly batch team, a business-hours team
    prompts = [p.prompt for p in a]
    assert len(set(prompts)) < len(prompts) * 0.6  # repeats and paraphrases of popular intents
    assert {p.route for p in a if p.team == "analytics"} >= {"analyst"}
    assert len({p.key for p in a}) >= 8 and len({p.user for p in a}) >= 12


def test_served_profile_traffic_replays_with_no_difference(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "traffic", "--profile", "demo", "--data-dir", str(tmp_path / "d"),
         "-n", "160", "--seed", "1"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sent 160 requests" in out.stdout and "by team: search" in out.stdout
    con = open_log(tmp_path / "d")
    targets = dict(con.execute("SELECT route, count(DISTINCT target) FROM requests GROUP BY 1").fetchall())
    assert targets["chat"] == 2  # the weighted route splits between a cheap and a dear target
    priced = con.execute("SELECT count(*) FROM requests WHERE cost_usd > 0").fetchone()[0]
    assert priced >= 150
    assert con.execute("SELECT count(DISTINCT team), count(DISTINCT key_id) FROM requests").fetchone() >= (4, 6)
    result = replay(tmp_path / "d" / "traffic-demo.yaml", con)
    assert result.summary["differs_from_log"]["any"] == 0


def test_profile_and_policy_are_exclusive(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "llmgw_kernel", "traffic", "--profile", "demo", "--policy", "x.yaml",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "--profile brings its own policy" in out.stderr


def test_a_policy_of_ones_own_gets_the_profile_on_its_routes() -> None:
    """``llmgw traffic --policy`` and the notebooks send the same traffic model to the policy's
    own routes: only those routes, every one of them (even a route no team uses), the teams'
    mix otherwise kept."""
    demo = PROFILES["demo"]
    mine = plan(demo, 300, seed=5, routes=["assistant", "summarize", "chat"])
    assert {p.route for p in mine} == {"assistant", "summarize", "chat"}
    assert [p.route for p in mine[:3]] == ["assistant", "summarize", "chat"]
    assert mine == plan(demo, 300, seed=5, routes=["assistant", "summarize", "chat"])
    theirs = plan(demo, 300, seed=5)
    assert [(p.team, p.prompt, p.key) for p in mine] == [(p.team, p.prompt, p.key) for p in theirs]
    kept = [a.route == b.route for a, b in zip(mine[3:], theirs[3:], strict=True) if b.route in ("assistant", "chat")]
    assert all(kept)
