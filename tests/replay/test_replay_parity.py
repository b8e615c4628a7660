"""Replay of logged live traffic through the live policy reproduces every live decision."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import yaml
from conftest import policy_for

from llmgw_kernel import load_policy, open_log, replay

MSG = [{"role": "user", "content": "x"}]


def _traffic(gw, n: int = 120) -> None:
    with httpx.Client(base_url=gw.base_url) as c:
        for i in range(n):
            c.post("/chat/completions", json={"model": "split", "messages": MSG, "stream": i % 5 == 0})
        for model in ("gpt-4o-mini", "fallback", "gpt-9", "no-key", "broken-500"):
            c.post("/chat/completions", json={"model": model, "messages": MSG})
        c.post("/chat/completions", content=b"{not json")
        c.post("/chat/completions", json={"model": "split", "messages": []})  # rejected before routing
        c.post("/embeddings", json={"model": "text-embedding-3-small", "input": "hi"})


def test_live_policy_replays_its_own_traffic_exactly(make_gateway, upstream, tmp_path):
    gw = make_gateway()
    _traffic(gw)
    gw.terminate()
    live = load_policy(gw.policy_path)
    result = replay(live, open_log(gw.data_dir))
    assert result.summary["requests"] == 128
    assert result.compare_to_log() == 0
    d = result.decisions
    routed = d[d["logged_target"].notna()]
    assert (routed["replay_target"] == routed["logged_target"]).all()
    # the weighted draw really splits traffic (70/30 declared; 120 draws)
    share = result.summary["routing"]["first_target_share"]
    assert 0.55 < share["local/gpt-4o-mini"] < 0.9 and share["other/gpt-4o"] > 0.1
    # a data directory works as the log argument too, and the window filter applies
    assert replay(live, gw.data_dir, since="2000-01-01", until="2000-01-02").summary["requests"] == 0
    # the served target agrees with the logged plan (first target succeeded)
    con = open_log(gw.data_dir)
    mismatches = con.execute(
        "SELECT count(*) FROM requests WHERE route = 'split' AND status = 200 AND target != plan[1]"
    ).fetchone()[0]
    assert mismatches == 0


def test_a_candidate_policy_changes_decisions(make_gateway, upstream, tmp_path):
    gw = make_gateway()
    _traffic(gw, 60)
    gw.terminate()
    doc = policy_for(upstream.base_url)
    doc["routes"]["split"]["targets"][0]["weight"] = 10
    doc["routes"]["split"]["targets"][1]["weight"] = 90
    doc["routes"]["gpt-9"] = {"targets": [{"provider": "demo", "model": "demo-echo"}]}
    candidate = load_policy(doc)
    result = replay(candidate, gw.data_dir)
    assert result.compare_to_log() > 0
    assert result.summary["routing"]["first_target_share"]["other/gpt-4o"] > 0.6
    gpt9 = result.decisions[result.decisions["route"] == "gpt-9"]
    assert list(gpt9["replay_target"]) == ["demo/demo-echo"]  # 404 live, routed by the candidate
    assert result.decisions.index.name == "request_id"


def test_replay_cli_json(make_gateway, upstream, tmp_path):
    gw = make_gateway()
    _traffic(gw, 10)
    gw.terminate()
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["requests"] == 18 and summary["compare_to_log"] == 0
    text = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "compare_to_log: 0" in text and "first_target_share" in text
    yaml.safe_load(gw.policy_path.read_text())
