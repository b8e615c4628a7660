"""Forecast vs actual through a real ``llmgw serve``: window 1 served by policy A, candidate B
replayed over it and promoted with its forecast (``llmgw policy promote --data-dir``), the
server hot-reloads B, window 2 comes from the same generator with a new seed, and
``llmgw forecast check`` compares. Plus the statistics against published values.

Traffic (seeded, so the same every run): N requests per window on one route, 70/30 (A) or
30/70 (B) weighted between two equally priced targets, drawn sticky by a per-request
``metadata.session`` (the draw is a hash of it: deterministic, and still one independent
draw per request); prompts repeat (exact cache); each window has its own 8 teams (a hard
budget per team, so window 2 starts from zero spend like window 1 did, and its own cache
namespace) and its own users (rpm 3 per user, users sending bursts of 1-6 requests). The
demo provider keeps the policy free of ports, so its version and every draw are the same in
every run (what timing decides — a reservation still in flight at the next admission — may
move a refusal or two between runs).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from llmgw_kernel import replay
from llmgw_kernel.replay.forecast import (
    check,
    forecast_check,
    forecast_for,
    forecast_of,
    observed_since,
)
from llmgw_kernel.replay.forecast_intervals import share_difference_interval, t975, wilson

N = 700  # requests per window: the stated sample size of the same-distribution check
PRICE = {"input_per_1m": 1000.0, "output_per_1m": 1000.0}  # both targets: the same price
BUDGET = 0.5  # USD per team and month: each team's traffic costs more, so its last requests are refused
TEAMS = 8  # per window: the clusters of the intervals


def _policy(weights: tuple[int, int]) -> dict:
    """The built-in demo provider (no port in the policy, so its version, and with it every
    weighted draw, is the same in every run): usage is a word count of prompt and answer."""
    return {
        "providers": {"local": {"kind": "demo"}, "other": {"kind": "demo"}},
        "routes": {
            "chat": {
                "sticky": "metadata.session",
                "targets": [
                    {"provider": "local", "model": "demo-mini", "weight": weights[0]},
                    {"provider": "other", "model": "demo-mini", "weight": weights[1]},
                ],
            }
        },
        "pricing": {"demo-mini": PRICE},
        "cache": {"exact": {"ttl_s": 86400}},
        "budgets": {"timezone": "UTC", "limits": [{"scope": "team", "usd": BUDGET, "window": "month"}]},
        "rate_limits": [{"scope": "user", "rpm": 3}],
        "log": {"flush_ms": 100},
    }


def _requests(seed: int, window: int, n: int) -> list[dict]:
    """Chat bodies: TEAMS teams and users in bursts of 1-6 requests, prompts from a skewed pool."""
    rng = random.Random(seed)
    prompts = [f"question {i}: what is {i} squared?" for i in range(400)]
    weights = [1 / (i + 1) for i in range(len(prompts))]
    out: list[dict] = []
    user = 0
    while len(out) < n:
        user += 1
        team = f"w{window}-team{rng.randrange(TEAMS)}"
        for _ in range(rng.randint(1, 6)):
            metadata = {"team": team, "user": f"w{window}-u{user}", "session": f"{seed}-{len(out)}"}
            content = rng.choices(prompts, weights)[0]
            out.append({"model": "chat", "messages": [{"role": "user", "content": content}], "metadata": metadata})
    return out[:n]


def _serve(gw, bodies: list[dict]) -> None:
    with httpx.Client(base_url=gw.base_url, timeout=10) as client:
        for body in bodies:
            assert client.post("/chat/completions", json=body).status_code in (200, 429)


def _wait_rows(data_dir, n: int) -> None:
    from llmgw_kernel import open_log

    deadline = time.monotonic() + 60
    while open_log(data_dir).execute("SELECT count(*) FROM requests").fetchone()[0] < n:
        assert time.monotonic() < deadline, "rows did not reach the log"
        time.sleep(0.1)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True)


def _wait_version(gw, old: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = httpx.get(f"{gw.url}/health").json()["policy_version"]
        if now != old:
            return now
        time.sleep(0.1)
    raise AssertionError("the server did not reload the promoted policy")


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    """Window 1 under A, B promoted with its forecast, window 2 under B (the server stays up)."""
    from conftest import Gateway

    tmp = tmp_path_factory.mktemp("forecast")
    gw = Gateway(tmp, _policy((70, 30)))
    try:
        version_a = httpx.get(f"{gw.url}/health").json()["policy_version"]
        _serve(gw, _requests(seed=1, window=1, n=N))
        _wait_rows(gw.data_dir, N)
        candidate = tmp / "candidate.yaml"
        candidate.write_text(yaml.safe_dump(_policy((30, 70))))
        out = _cli("policy", "promote", str(candidate), "--policy", str(gw.policy_path),
                   "--data-dir", str(gw.data_dir), "--forecast-window", "1h")  # fmt: skip
        assert out.returncode == 0, out.stderr
        version_b = _wait_version(gw, version_a)
        _serve(gw, _requests(seed=2, window=2, n=N))
        _wait_rows(gw.data_dir, 2 * N)
        yield gw, candidate, out.stdout, version_b
    finally:
        gw.terminate()


def test_promote_with_a_log_records_the_forecast_of_the_candidate(promoted):
    gw, _, stdout, version_b = promoted
    assert "forecast recorded in" in stdout
    records = list((gw.policy_path.parent / "history" / "live" / "forecasts").glob(f"*-{version_b}.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    forecast = record["forecast"]
    assert record["version"] == version_b and forecast["basis"]["policy_version"] == version_b
    assert forecast["basis"]["requests"] == N
    assert forecast["basis"]["price_source"] == {"local/demo-mini": "policy", "other/demo-mini": "policy"}
    share = forecast["figures"]["target_share[chat][other/demo-mini]"]
    assert 0.6 < share["value"] < 0.8  # B's 70%, not the 30% window 1 was served with
    # per-request variance: p(1-p) times the design effect of the teams (>= 1)
    assert share["clusters"] == TEAMS and share["design_effect"] >= 1
    assert share["variance"] == pytest.approx(share["value"] * (1 - share["value"]) * share["design_effect"])
    # the limits were exercised by the traffic, so the refusal figures mean something
    assert forecast["figures"]["refused[budget_exceeded]"]["value"] > 0.05
    assert forecast["figures"]["refused[rate_limited]"]["value"] > 0.05
    assert forecast["figures"]["cache_hit_rate"]["value"] > 0.1


def test_forecast_check_same_distribution_is_within_the_95_percent_intervals(promoted):
    gw, _, _, version_b = promoted
    out = _cli("forecast", "check", "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["observed"]["basis"]["requests"] == N
    assert report["observed"]["basis"]["policy_versions"] == {version_b: N}
    rows = {r["figure"]: r for r in report["rows"]}
    expected = {"target_share[*][local/demo-mini]", "target_share[chat][other/demo-mini]", "cache_hit_rate",
                "cost_per_1k_usd", "refused[budget_exceeded]", "refused[rate_limited]"}  # fmt: skip
    assert expected <= set(rows)
    outside = {
        name: (r["forecast"], r["observed"], r["interval"]) for name, r in rows.items() if r["within"] is not True
    }
    assert not outside
    again = {r["figure"]: r for r in forecast_check(gw.policy_path, gw.data_dir)}  # the dashboard's call
    assert {k: (r["within"], r["n_observed"]) for k, r in again.items()} == {
        k: (r["within"], r["n_observed"]) for k, r in rows.items()
    }
    assert again["cost_per_1k_usd"]["observed"] == pytest.approx(rows["cost_per_1k_usd"]["observed"])
    text = _cli("forecast", "check", "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir)).stdout
    assert "cache_hit_rate" in text and "95% interval" in text and " NO" not in text


def test_a_policy_that_behaves_otherwise_is_reported_outside(promoted):
    """A forecast for weights 95/5 checked against window 2 (served 30/70): the shares are out."""
    gw, _, stdout, _ = promoted
    promoted_at = json.loads(
        next((gw.policy_path.parent / "history" / "live" / "forecasts").glob("*.json")).read_text()
    )
    since = promoted_at["promoted_at"]
    window1 = promoted_at["forecast"]["basis"]
    from datetime import datetime

    other = _policy((95, 5))
    forecast = forecast_for(other, gw.data_dir, datetime.fromisoformat(window1["since"]), datetime.fromisoformat(since))
    rows = {r["figure"]: r for r in check(forecast, observed_since(gw.data_dir, since))}
    share = rows["target_share[chat][local/demo-mini]"]
    assert share["forecast"] > 0.9 and share["observed"] < 0.4
    assert share["within"] is False and share["interval"][1] < 0
    assert rows["cache_hit_rate"]["within"] is True  # what did not change still agrees


def test_editing_the_live_file_after_promotion_leaves_no_forecast_to_check(promoted, tmp_path):
    gw, candidate, _, _ = promoted
    live = tmp_path / "live.yaml"
    doc = yaml.safe_load(candidate.read_text())
    doc["routes"]["chat"]["targets"][0]["weight"] = 50
    live.write_text(yaml.safe_dump(doc))
    out = _cli("forecast", "check", "--policy", str(live), "--data-dir", str(gw.data_dir))
    assert out.returncode == 1
    assert "no forecast was recorded for the live policy" in out.stderr


def test_forecast_of_a_replay_over_an_empty_log(tmp_path):
    p = {"providers": {"d": {"kind": "demo"}}, "routes": {"demo": {"targets": [{"provider": "d", "model": "echo"}]}}}
    forecast = forecast_of(replay(p, tmp_path), {"since": None})
    assert forecast["basis"]["requests"] == 0
    assert forecast["figures"]["cache_hit_rate"] == {
        "kind": "share", "group": "cache", "count": 0, "n": 0, "clusters": 0, "value": None, "variance": None,
        "design_effect": None,
    }  # fmt: skip
    rows = check(forecast, observed_since(tmp_path, "2000-01-01"))
    assert rows and all(r["within"] is None for r in rows)


def test_intervals_match_published_values():
    """Newcombe (1998), Stat. Med. 17:873, example (a) 56/70 vs 48/80 and the 0/10 vs 0/20
    case, method 10; Wilson 81/263 (same paper, table I)."""
    assert share_difference_interval(48, 80, 56, 70) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert share_difference_interval(0, 10, 0, 20) == pytest.approx((-0.2775, 0.1611), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def _figure(kind: str, value: float, n: int, variance: float, clusters: int, deff: float = 1.0) -> dict:
    return {"figures": {"f": {"kind": kind, "scale": 1000 if kind == "mean" else 1, "n": n, "value": value,
                              "count": value * n, "variance": variance, "clusters": clusters, "design_effect": deff}},
            "groups": {}}  # fmt: skip


def test_check_of_a_mean_uses_both_windows_variances():
    f = _figure("mean", 10.0, 400, 4e-6, clusters=400)
    o = _figure("mean", 10.5, 100, 1e-6, clusters=100)
    (row,) = check(f, o)
    half = 1.959964 * (4e-6 / 400 + 1e-6 / 100) ** 0.5 * 1000
    assert row["interval"] == pytest.approx([0.5 - half, 0.5 + half])
    assert row["within"] is (half >= 0.5) and row["diff_pct"] == pytest.approx(5.0)


def test_t_quantiles_match_the_table():
    for df, t in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert t975(df) == pytest.approx(t, abs=0.005)
    assert t975(float("inf")) == pytest.approx(1.959964)


def test_clustered_traffic_widens_the_interval():
    """8 teams per window; refusals all in two teams (a budget spent): the same 10% refused
    reads as a significant move for independent requests, not once the teams are accounted."""
    import pandas as pd

    from llmgw_kernel.replay.forecast import _share

    n = pd.Series([100] * 8)
    clustered = _share(pd.Series([40, 40, 0, 0, 0, 0, 0, 0]), n, "requests")
    spread = _share(pd.Series([10] * 8), n, "requests")
    assert clustered["value"] == spread["value"] == 0.1
    assert spread["design_effect"] == 1.0 and clustered["design_effect"] > 10
    observed = {"figures": {"f": _share(pd.Series([15] * 8), n, "requests")}, "groups": {}}
    (independent,) = check({"figures": {"f": spread}, "groups": {}}, observed)
    (by_team,) = check({"figures": {"f": clustered}, "groups": {}}, observed)
    assert independent["within"] is False  # 10% vs 15% of 800 independent requests
    assert by_team["within"] is True and by_team["interval"][1] - by_team["interval"][0] > 0.2
