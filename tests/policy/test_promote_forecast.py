"""Promotion records the forecast it was based on (when there is a log to replay), keyed by
the promoted version; without a log it still promotes and says it recorded none. Logs are
real Parquet segments written through the real log writer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_lifecycle import doc as routes_doc

from llmgw_kernel import load_policy
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.policy.lifecycle import history, promote, recorded_forecast, rollback

N = 400


def doc(weight_a: float, weight_b: float) -> dict:
    """test_lifecycle's two-target policy, with prices (so a forecast has a cost)."""
    return {**routes_doc(weight_a, weight_b), "pricing": {"x": {"input_per_1m": 1000.0, "output_per_1m": 2000.0}}}


def write(path: Path, d: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d))
    return path


def write_log(data_dir: Path, live: Path, n: int = N, at: float | None = None) -> None:
    """``n`` chat completions served by the policy in ``live`` (first target as it drew),
    one per second ending ``at`` (default: now)."""
    from llmgw_kernel.decisions.routing import plan_route

    policy = load_policy(live)
    end = time.time() if at is None else at
    writer = LogWriter(data_dir, journal=False)
    for i in range(n):
        rid = f"req_{i:05d}"
        rec = RequestRecord(rid, end - n + i, "chat.completions")
        rec.route, rec.policy_version = "m", policy.version
        rec.plan = tuple(plan_route(policy, "m", rid).targets)
        rec.target, rec.status, rec.outcome = rec.plan[0], 200, "ok"
        rec.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        rec.cost_usd = 10 * 1000 / 1e6 + 5 * 2000 / 1e6
        rec.ts_end = rec.ts + 0.1
        writer.append(rec)
    writer.close()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return write(tmp_path / "policies" / "live.yaml", doc(70, 30))


def test_promote_without_a_log_promotes_and_records_no_forecast(tmp_path, live):
    cand = write(tmp_path / "cand.yaml", doc(20, 80))
    out = cli("policy", "promote", str(cand), "--policy", str(live), cwd=tmp_path)  # default: ./llmgw-data
    assert out.returncode == 0, out.stderr
    assert "no forecast recorded (no request logged in llmgw-data over the last 7d)" in out.stdout
    assert load_policy(live).version == load_policy(cand).version
    assert recorded_forecast(live) is None and not (live.parent / "history" / "live" / "forecasts").exists()
    # a data dir without a log (or without rows in the window): the same
    (tmp_path / "empty").mkdir()  # one that does not exist is a usage error (tests/test_cli_usage_errors.py)
    write(cand, doc(30, 70))
    out = cli("policy", "promote", str(cand), "--policy", str(live), "--data-dir", str(tmp_path / "empty"))
    assert out.returncode == 0 and "no forecast recorded (no request logged in" in out.stdout
    check = cli("forecast", "check", "--policy", str(live), "--data-dir", str(tmp_path / "empty"))
    assert check.returncode == 1 and "no forecast was recorded for the live policy" in check.stderr


def test_promote_with_a_log_records_the_candidates_forecast(tmp_path, live):
    data = tmp_path / "data"
    write_log(data, live)
    cand = write(tmp_path / "cand.yaml", doc(10, 90))
    out = cli("policy", "promote", str(cand), "--policy", str(live), "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    assert "forecast recorded in" in out.stdout
    record = recorded_forecast(live)
    assert record is not None and record["version"] == load_policy(cand).version
    assert Path(record["path"]).parent == live.parent / "history" / "live" / "forecasts"
    assert record["replaced"] == load_policy(write(tmp_path / "a.yaml", doc(70, 30))).version
    basis, figures = record["forecast"]["basis"], record["forecast"]["figures"]
    assert basis["requests"] == N and basis["policy_version"] == record["version"]
    assert basis["price_source"] == {"a/x": "policy", "b/x": "policy"}
    # the candidate's draw (10/90) over the logged requests, not the 70/30 they were served with
    assert 0.85 < figures["target_share[m][b/x]"]["value"] < 0.95
    assert figures["target_share[m][b/x]"]["n"] == N
    assert figures["cost_per_1k_usd"]["value"] == pytest.approx(20.0)  # $0.02 a request
    # the forecast is found for the live version, and stays findable after a later promotion
    write(cand, doc(50, 50))
    promote(cand, live)
    assert recorded_forecast(live) is None  # the new live version was promoted without one


def test_a_forecast_record_is_not_a_history_entry(tmp_path, live):
    """Regression: the forecasts folder lives beside the history entries; rollback must not
    take it for an archived version."""
    promote(write(tmp_path / "b.yaml", doc(40, 60)), live, forecast={"basis": {}, "figures": {}, "groups": {}})
    assert len(history(live)) == 1
    back = rollback(live)
    assert back.new_version == load_policy(write(tmp_path / "a.yaml", doc(70, 30))).version


def test_promote_api_forecast_argument(tmp_path, live):
    cand = write(tmp_path / "cand.yaml", doc(5, 95))
    seen = []

    def forecast(policy):
        seen.append(policy.version)
        return {"basis": {"requests": 1}, "figures": {}, "groups": {}}

    change = promote(cand, live, forecast=forecast)
    assert seen == [change.new_version]  # called with the validated candidate
    assert change.forecast is not None and json.loads(change.forecast.read_text())["forecast"]["basis"] == {
        "requests": 1
    }
    before = live.read_text()

    def failing(policy):
        raise RuntimeError("replay failed")

    with pytest.raises(RuntimeError):
        promote(write(tmp_path / "c.yaml", doc(1, 99)), live, forecast=failing)
    assert live.read_text() == before and len(history(live)) == 1  # nothing changed


def test_bad_forecast_window_changes_nothing(tmp_path, live):
    before = live.read_text()
    out = cli("policy", "promote", str(write(tmp_path / "c.yaml", doc(1, 99))), "--policy", str(live),
              "--data-dir", str(tmp_path), "--forecast-window", "a week")  # fmt: skip
    assert out.returncode == 2 and "--forecast-window" in out.stderr
    assert live.read_text() == before


def test_rollback_checks_the_restored_version_against_its_forecast_from_its_return(tmp_path, live):
    first = {"basis": {"requests": 7}, "figures": {}, "groups": {}}
    b = promote(write(tmp_path / "b.yaml", doc(40, 60)), live, forecast=first)
    promote(write(tmp_path / "c.yaml", doc(10, 90)), live, forecast={"basis": {}, "figures": {}, "groups": {}})
    promoted_b = json.loads(b.forecast.read_text())["promoted_at"]
    back = rollback(live)
    record = recorded_forecast(live)
    assert back.new_version == b.new_version and back.forecast is not None
    assert record is not None and record["forecast"] == first and record["version"] == b.new_version
    assert record["promoted_at"] > promoted_b  # C's rows in between are not B's to answer for
    assert record["restored_from"] == str(b.forecast)
    rollback(live)  # back to A, promoted without a forecast: none to renew
    assert recorded_forecast(live) is None
