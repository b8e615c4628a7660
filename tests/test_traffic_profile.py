"""`llmgw traffic --profile demo` (issue 13, item 6): realistic synthetic traffic — teams with
their own keys, users and time-of-day shape, repeated and paraphrased prompts, targets that
differ in price, latency and failure rate — served through a real server, and replayed by its
own policy with no difference."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from llmgw_kernel import open_log, replay, traffic_bulk
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


# -- the same model drawn in bulk (traffic_bulk): benchmarks and sweep tests ---------------------


def test_bulk_draws_are_deterministic_and_follow_the_teams_shapes() -> None:
    """A week of the demo profile drawn at once: the daily and weekly shapes, each team's hours,
    keys, users and routes, and prompts that repeat word for word and in other words."""
    demo = PROFILES["demo"]
    week = traffic_bulk.draw(demo, 20_000, seed=2, rate_per_s=20_000 / (7 * 86400))
    again = traffic_bulk.draw(demo, 20_000, seed=2, rate_per_s=20_000 / (7 * 86400))
    assert all(np.array_equal(getattr(week, f), getattr(again, f)) for f in ("ts", "team", "key", "intent"))
    assert not np.array_equal(week.team, traffic_bulk.draw(demo, 20_000, seed=3).team)
    assert bool(np.all(np.diff(week.ts) >= 0)) and week.ts[0] >= traffic_bulk.WEEK_START
    assert 5.5 < (week.ts[-1] - week.ts[0]) / 86400 < 8.5  # a week at the weekly mean rate
    hour, weekday = (week.ts // 3600 % 24).astype(int), ((week.ts // 86400 + 3) % 7).astype(int)
    per_day = np.bincount(weekday, minlength=7)
    assert per_day[5:].max() < 0.7 * per_day[:5].min()  # weekends are lighter
    names = list(week.teams)
    analytics, support = week.team == names.index("analytics"), week.team == names.index("support")
    assert np.median(hour[analytics]) < 6 and 9 <= np.median(hour[support]) <= 15  # nightly / business hours
    shares = np.bincount(week.team, minlength=4) / len(week.team)
    volume = np.array([t.mean_on(0, False) * 5 + t.mean_on(0, True) * 2 for t in demo.teams])
    assert np.allclose(shares, volume / volume.sum(), atol=0.02)  # each team's weekly volume
    for j, team in enumerate(demo.teams):
        mine = week.team == j
        assert week.key[mine].max() == team.keys - 1 and week.user[mine].max() == team.users - 1
        assert {week.routes[r] for r in np.unique(week.route[mine])} == set(team.routes)
    prompts = week.intent * traffic_bulk.PHRASINGS + week.phrasing
    assert len(np.unique(prompts)) < 0.6 * len(prompts)  # exact repeats of popular prompts
    first = {}
    for i, p in zip(week.intent.tolist(), week.phrasing.tolist(), strict=True):
        first.setdefault(i, set()).add(p)
    assert sum(len(v) > 1 for v in first.values()) > 500  # the same intents in other words


def test_bulk_prompts_are_one_text_per_intent_and_phrasing() -> None:
    texts = {traffic_bulk.prompt_text(i, k) for i in range(20_000) for k in (0, traffic_bulk.PHRASINGS - 1)}
    assert len(texts) == 40_000  # intents never share their words (the exact cache tells them apart)
    assert traffic_bulk.prompt_text(7, traffic_bulk.PHRASINGS - 1).startswith("why can I not")


def test_a_profile_on_a_policy_of_ones_own_keeps_its_volumes() -> None:
    demo = PROFILES["demo"]
    mine = traffic_bulk.for_policy(demo, "mine", {"analyst": {"batch": 0.5, "sum": 0.5}}, keys=8, users=0.1)
    for old, new in zip(demo.teams, mine.teams, strict=True):
        assert sum(new.routes.values()) == sum(old.routes.values()) and "analyst" not in new.routes
        assert new.routes.get("chat") == old.routes.get("chat") and new.keys == 8 * old.keys and new.users >= 1
        assert (new.per_weekday, new.hours) == (old.per_weekday, old.hours)


def test_the_benchmark_logs_are_the_profiles_traffic(tmp_path: Path) -> None:
    """``benchmarks/replay_scale.py`` and ``cache/synthetic_log.py`` (the replay and semantic
    benchmarks, the sweep and fold tests) write the traffic profile's teams, keys and users, not
    teams of their own; the replay benchmark's cached log is per generator version."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import replay_scale

    from llmgw_kernel.cache import synthetic_log
    from llmgw_kernel.cache.service import key_id

    demo = PROFILES["demo"]
    keys = {key_id(f"sk-synthetic-{t.name}-{k}"): t.name for t in demo.teams for k in range(8 * t.keys)}
    replay_scale.generate(tmp_path / "scale", 1500, seed=1, chunk=1000)
    synthetic_log.generate(tmp_path / "semantic", 600, seed=1)
    for d in ("scale", "semantic"):
        rows = open_log(tmp_path / d).execute("SELECT key_id, team, metadata->>'user', route FROM requests").fetchall()
        assert {team for _, team, _, _ in rows} == {t.name for t in demo.teams}, d
        assert all(keys[k] == team and user.startswith(f"{team}-user-") for k, team, user, _ in rows), d
    routes = {r for *_, r in open_log(tmp_path / "scale").execute("SELECT route FROM requests").fetchall()}
    assert routes == {"chat", "assistant", "batch", "summarize", "gpt-5-turbo"}
    assert replay_scale.ensure_log(tmp_path / "cache", 0).name == f"rows-0-v{replay_scale.GEN_VERSION}"
    assert replay_scale.GEN_VERSION >= 3  # 3: the first log drawn from the traffic profile


def test_a_second_benchmark_run_never_deletes_a_log_being_written(tmp_path: Path, monkeypatch) -> None:
    """Two ``replay_scale.py`` runs needing the same log (two engineers, one cache folder): the
    second used to delete the first one's half-written folder and write into the same path, so
    the first marked a log of whatever was left complete (seen: a "1M-row" log of 650k rows).
    Each now writes a folder of its own, renamed into place when complete; the first done wins."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import replay_scale

    real, cache, seen = replay_scale.generate, tmp_path / "cache", []

    def first_run(data_dir: Path, rows: int) -> None:  # meanwhile, a second run needs the same log
        (data_dir / "mine").write_text("first")
        assert not (cache / f"rows-{rows}-v{replay_scale.GEN_VERSION}").exists()  # nothing half-written in place
        monkeypatch.setattr(replay_scale, "generate", real)
        seen.append(replay_scale.ensure_log(cache, rows))
        assert (data_dir / "mine").read_text() == "first"  # the second run left this one's folder alone

    monkeypatch.setattr(replay_scale, "generate", first_run)
    got = replay_scale.ensure_log(cache, 300)
    assert got == seen[0] and (got / "complete.json").exists() and not (got / "mine").exists()  # the second's
    assert open_log(got).execute("SELECT count(*) FROM requests").fetchone()[0] == 300
    assert [p.name for p in cache.iterdir()] == [got.name]  # the first run's copy removed
