"""llmgw_kernel.lab: where a candidate is written, what its promote command is, and that the
command does what it says (a real `llmgw policy promote` records the forecast shown)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from llmgw_kernel import lab, load_policy
from llmgw_kernel.log.reader import open_log
from llmgw_kernel.traffic import serve_synthetic_traffic

LIVE_DOC = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"assistant": {"targets": [
        {"provider": "demo", "model": "demo-large", "weight": 80},
        {"provider": "demo", "model": "demo-small", "weight": 20},
    ]}},
    "pricing": {"demo-large": {"input_per_1m": 2.5, "output_per_1m": 10.0},
                "demo-small": {"input_per_1m": 0.15, "output_per_1m": 0.6}},
    "log": {"flush_ms": 100},
}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("lab")
    live = tmp / "live.yaml"
    live.write_text(yaml.safe_dump(LIVE_DOC, sort_keys=False))
    report = serve_synthetic_traffic(live, tmp / "data", n=60, routes=["assistant"])
    assert report.errors == 0, report.failure_lines()
    return live, tmp / "data"


def test_the_candidate_goes_to_policies_candidates_under_the_working_directory(tmp_path, monkeypatch, served):
    live, data = served
    monkeypatch.delenv(lab.CANDIDATES_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    doc = {**LIVE_DOC, "routes": {"assistant": {"targets": [
        {"provider": "demo", "model": "demo-large", "weight": 40},
        {"provider": "demo", "model": "demo-small", "weight": 60},
    ]}}}  # fmt: skip
    cand = lab.write_candidate(doc, "split-60", live=live, data_dir=data)
    assert cand.path == Path("policies/candidates/split-60.yaml")
    assert load_policy(tmp_path / cand.path).version == load_policy(doc).version
    assert cand.command == (
        f"llmgw policy promote policies/candidates/split-60.yaml --policy {live.resolve()} "
        f"--data-dir {data.resolve()} --forecast-window {cand.window}"
    )
    assert cand.forecast is not None and cand.forecast["basis"]["requests"] == 60
    share = cand.forecast["figures"]["target_share[assistant][demo/demo-small]"]["value"]
    # the candidate's 60% (the live policy's 20%) over 60 requests whose ids (the draws) are random
    # per run: 48 of 60 happened once (0.4 < share < 0.8 failed); outside 0.35-0.85 is < 1e-4 likely
    assert 0.35 < share < 0.85
    table = cand.compare()
    was = cand.live_forecast()["figures"]["target_share[assistant][demo/demo-small]"]["value"]
    row = table.loc["target_share[assistant][demo/demo-small]"]
    assert (row["live"], row["candidate"]) == (f"{100 * was:.2f}%", f"{100 * share:.2f}%")
    assert row["change"] == f"{100 * (share - was):+.2f}pt"
    assert "llmgw policy promote policies/candidates/split-60.yaml" in cand._repr_markdown_()


def test_the_printed_command_promotes_and_records_the_forecast_shown(tmp_path, monkeypatch, served):
    _, data = served
    live = tmp_path / "policies" / "live.yaml"
    live.parent.mkdir()
    live.write_text(yaml.safe_dump(LIVE_DOC, sort_keys=False))
    monkeypatch.delenv(lab.CANDIDATES_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    cand = lab.write_candidate(load_policy(LIVE_DOC).model_copy(), "same", live=live, data_dir=data)
    args = cand.command.split()[1:]
    out = subprocess.run([sys.executable, "-m", "llmgw_kernel", *args], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    record = json.loads(next((live.parent / "history").rglob("forecasts/*.json")).read_text())
    assert record["forecast"]["basis"]["requests"] == cand.forecast["basis"]["requests"] == 60
    assert record["forecast"]["figures"] == json.loads(json.dumps(cand.forecast["figures"]))


def test_the_window_covers_the_whole_log_with_slack(served):
    _, data = served
    con = open_log(data)
    first = con.execute("SELECT min(ts) FROM requests").fetchone()[0]
    now = datetime.now(UTC)
    window = lab.forecast_window(con, now)
    assert window == f"{int((now - first).total_seconds() // 3600) + 2}h"
    assert lab.forecast_window(con, first + timedelta(days=30)) == "32d"


def test_a_bad_name_is_refused_before_anything_is_written(tmp_path, monkeypatch, served):
    live, data = served
    monkeypatch.setenv(lab.CANDIDATES_ENV, str(tmp_path / "c"))
    with pytest.raises(ValueError, match="candidate name"):
        lab.write_candidate(LIVE_DOC, "../escape", live=live, data_dir=data)
    assert not (tmp_path / "c").exists()
