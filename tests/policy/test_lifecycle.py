"""promote / rollback / diff on files, as a team would run them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from llmgw_kernel import PolicyError, load_policy
from llmgw_kernel.policy.lifecycle import diff, history, promote, rollback


def doc(weight_a: float, weight_b: float) -> dict:
    return {
        "providers": {"a": {"kind": "demo"}, "b": {"kind": "demo"}},
        "routes": {
            "m": {
                "targets": [
                    {"provider": "a", "model": "x", "weight": weight_a},
                    {"provider": "b", "model": "x", "weight": weight_b},
                ]
            }
        },
    }


def write(path, d) -> None:
    path.write_text(yaml.safe_dump(d))


def test_promote_keeps_history_and_rollback_walks_back(tmp_path):
    live = tmp_path / "policies" / "live.yaml"
    live.parent.mkdir()
    write(live, doc(70, 30))
    v1 = load_policy(live).version
    cand = tmp_path / "cand.yaml"
    write(cand, doc(50, 50))
    change = promote(cand, live)
    assert (change.old_version, change.new_version) == (v1, load_policy(cand).version)
    assert live.read_text() == cand.read_text()  # the file as written: a reviewable diff
    assert len(history(live)) == 1 and v1 in history(live)[0].name
    write(cand, doc(10, 90))
    promote(cand, live)
    assert len(history(live)) == 2
    back = rollback(live)
    assert back.old_version == load_policy(cand).version
    assert load_policy(live).routes["m"].targets[0].weight == 50
    rollback(live)
    assert load_policy(live).version == v1
    with pytest.raises(FileNotFoundError):
        rollback(live)


def test_invalid_candidate_changes_nothing(tmp_path):
    live = tmp_path / "live.yaml"
    write(live, doc(70, 30))
    before = live.read_text()
    bad = tmp_path / "bad.yaml"
    write(bad, doc(-1, 30))
    with pytest.raises(PolicyError):
        promote(bad, live)
    assert live.read_text() == before and history(live) == []


def test_diff(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write(a, doc(70, 30))
    write(b, doc(60, 40))
    text = diff(a, b)
    assert "-      weight: 70.0" in text and "+      weight: 60.0" in text
    assert diff(a, a) == ""
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "policy", "diff", str(a), str(b)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "weight: 60.0" in out.stdout


def test_cli_promote_accepts_data_dir(tmp_path):
    live = tmp_path / "live.yaml"
    write(live, doc(70, 30))
    cand = tmp_path / "cand.yaml"
    write(cand, doc(20, 80))
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "policy", *a], capture_output=True, text=True
    )  # noqa: E731
    (tmp_path / "data").mkdir()  # a missing --data-dir is refused (test_outside_s8_promote_missing_data_dir)
    out = run("promote", str(cand), "--policy", str(live), "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    assert load_policy(live).routes["m"].targets[0].weight == 20
    out = run("rollback", "--policy", str(live))
    assert out.returncode == 0 and load_policy(live).routes["m"].targets[0].weight == 70
