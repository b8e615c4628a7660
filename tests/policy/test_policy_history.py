"""A policy version is its YAML and its rule modules: promote installs and archives both,
validates the candidate as it will be live, and rollback restores the previous version byte
for byte, skipping archived entries that no longer validate. Run through the CLI as a team
would, from a working directory that is not the policy's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmgw_kernel import PolicyError, load_policy
from llmgw_kernel.decisions.context import RouteContext
from llmgw_kernel.policy.lifecycle import history, promote, rollback

RULE = "def pick(ctx):\n    return [{target!r}]\n"


def policy_doc(rule: str | None = "tiers:pick", weight: float = 1) -> dict:
    route = {
        "targets": [{"provider": "a", "model": "x", "weight": weight}, {"provider": "b", "model": "x", "weight": 1}]
    }
    if rule:
        route["rule"] = rule
    return {"providers": {"a": {"kind": "demo"}, "b": {"kind": "demo"}}, "routes": {"m": route}}


def write_version(folder: Path, name: str, target: str, rule: str | None = "tiers:pick", weight: float = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiers.py").write_text(RULE.format(target=target))
    path = folder / name
    path.write_text(yaml.safe_dump(policy_doc(rule, weight)))
    return path


def choice(live: Path) -> list[str]:
    policy = load_policy(live)
    func, _ = policy._functions["m"]
    return func(RouteContext("req", "m"))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "policy", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_rule_modules_are_promoted_archived_and_rolled_back_with_the_yaml(tmp_path: Path) -> None:
    live = write_version(tmp_path / "policies", "live.yaml", "a/x")
    v1, v1_bytes = load_policy(live).version, live.read_bytes()
    cand = write_version(tmp_path / "work", "candidate.yaml", "b/x")  # same YAML, other module code
    v2 = load_policy(cand).version
    assert v2 != v1  # the module's content is part of the version

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = cli("promote", str(cand), "--policy", str(live), cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert "rule module installed" in out.stdout
    assert load_policy(live).version == v2 and choice(live) == ["b/x"]
    (entry,) = history(live)
    assert v1 in entry.name and (entry / "tiers.py").read_text() == RULE.format(target="a/x")

    out = cli("rollback", "--policy", "policies/live.yaml", cwd=tmp_path)  # relative to another folder
    assert out.returncode == 0, out.stderr
    assert live.read_bytes() == v1_bytes and load_policy(live).version == v1 and choice(live) == ["a/x"]
    assert history(live) == []


def test_promote_validates_as_live_and_brings_the_modules(tmp_path: Path) -> None:
    live = tmp_path / "policies" / "live.yaml"
    live.parent.mkdir()
    live.write_text(yaml.safe_dump(policy_doc(rule=None)))
    before = live.read_bytes()
    # a candidate whose module is nowhere: refused, nothing changes
    lonely = tmp_path / "lonely" / "candidate.yaml"
    lonely.parent.mkdir()
    lonely.write_text(yaml.safe_dump(policy_doc("missing:pick")))
    out = cli("promote", str(lonely), "--policy", str(live), cwd=tmp_path)
    assert out.returncode == 1 and "routes.m.rule" in out.stderr and "as it would be live" in out.stderr
    assert live.read_bytes() == before and history(live) == []
    # a candidate whose module lives beside it: the module goes live with it
    cand = write_version(tmp_path / "work", "candidate.yaml", "b/x")
    change = promote(cand, live)
    assert change.modules == ["tiers.py"] and (live.parent / "tiers.py").is_file()
    assert load_policy(live).version == load_policy(cand).version == change.new_version
    # a candidate that names a module it does not carry validates with the live one
    bare = tmp_path / "bare" / "candidate.yaml"
    bare.parent.mkdir()
    bare.write_text(yaml.safe_dump(policy_doc(weight=3)))
    assert promote(bare, live).modules == [] and choice(live) == ["b/x"]


def test_rollback_skips_invalid_entries_and_says_so(tmp_path: Path) -> None:
    live = write_version(tmp_path / "policies", "live.yaml", "a/x")
    good = live.read_bytes()
    live.write_bytes(b"routes: [this is not a policy\r\n")  # edited by hand, invalid
    cand = write_version(tmp_path / "work", "candidate.yaml", "b/x", weight=2)
    promote(cand, live)  # archives the hand-written file, as it was
    (entry,) = history(live)
    assert entry.name.endswith("-invalid") and (entry / "policy.yaml").read_bytes().endswith(b"\r\n")
    out = cli("rollback", "--policy", str(live), cwd=tmp_path)
    assert out.returncode == 1 and "skipped" in out.stderr and entry.name in out.stderr
    assert load_policy(live).version == load_policy(cand).version  # unchanged

    # with a valid version further back, rollback passes over the invalid one and names it
    live.write_bytes(good)
    v_good = load_policy(live).version  # with the module the last promote installed
    promote(cand, live)  # history: [invalid, good]
    live.write_bytes(b"{}: [\n")
    promote(cand, live)  # history: [invalid, good, invalid]
    out = cli("rollback", "--policy", str(live), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stderr and live.read_bytes() == good and load_policy(live).version == v_good


def test_rollback_restores_the_file_byte_for_byte(tmp_path: Path) -> None:
    live = tmp_path / "live.yaml"
    text = yaml.safe_dump(policy_doc(rule=None)).replace("\n", "\r\n")
    original = ("# reviewed by ann\r\n" + text + "\r\n").encode() + "# café\r\n".encode()
    live.write_bytes(original)
    cand = tmp_path / "cand.yaml"
    cand.write_text(yaml.safe_dump(policy_doc(rule=None, weight=5)))
    promote(cand, live)
    assert rollback(live).new_version == load_policy(live).version
    assert live.read_bytes() == original


def test_an_edited_module_is_reloaded_even_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    """The version's module digest and the code that runs are the same bytes."""
    live = write_version(tmp_path, "live.yaml", "a/x")
    module = tmp_path / "tiers.py"
    stat = module.stat()
    first = load_policy(live)
    module.write_text(RULE.format(target="b/x"))  # same length
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert module.stat().st_size == stat.st_size
    second = load_policy(live)
    assert second.version != first.version and choice(live) == ["b/x"]


def test_an_invalid_candidate_changes_nothing(tmp_path: Path) -> None:
    live = write_version(tmp_path / "policies", "live.yaml", "a/x")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(policy_doc(weight=-1)))
    with pytest.raises(PolicyError):
        promote(bad, live)
    assert history(live) == []
