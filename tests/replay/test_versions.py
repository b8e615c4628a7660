"""served_policies: every version a live policy file has been, loaded from its history with its
own rule modules (so each logged row can be replayed under the version that served it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import yaml

from llmgw_kernel.decisions.routing import plan_route, route_context
from llmgw_kernel.policy.lifecycle import promote, rollback
from llmgw_kernel.policy.versions import history_dir
from llmgw_kernel.replay.versions import missing_versions, served_policies

TIERS = "def pick(ctx):\n    return [{target!r}]\n"


def _doc(weight_a: int, rule: bool = False) -> dict:
    route = {
        "targets": [{"provider": "d", "model": "a", "weight": weight_a}, {"provider": "d", "model": "b", "weight": 1}]
    }
    doc: dict[str, Any] = {"providers": {"d": {"kind": "demo"}}, "routes": {"m": route}}
    if rule:
        doc["routes"]["r"] = {
            "targets": [{"provider": "d", "model": "a"}, {"provider": "d", "model": "b"}],
            "rule": "tiers:pick",
        }
    return doc


def _candidate(folder: Path, doc: dict, tiers_target: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "candidate.yaml"
    path.write_text(yaml.safe_dump(doc))
    if tiers_target is not None:
        (folder / "tiers.py").write_text(TIERS.format(target=tiers_target))
    return path


def _first_target(policy, route: str) -> str:
    return plan_route(policy, route, "req_1", route_context("req_1", route, {"messages": []}, None)).targets[0]


def test_every_promoted_and_rolled_back_version_is_served(tmp_path):
    live = tmp_path / "policies" / "live.yaml"
    live.parent.mkdir()
    live.write_text(yaml.safe_dump(_doc(1)))
    v1 = served_policies(live)
    assert len(v1) == 1
    c2 = promote(_candidate(tmp_path / "c2", _doc(2)), live)
    c3 = promote(_candidate(tmp_path / "c3", _doc(3)), live)
    back = rollback(live)  # v3 goes to history/live/rolled-back/, v2 is live again
    assert back.new_version == c2.new_version
    found = served_policies(live)
    assert set(found) == {c2.old_version, c2.new_version, c3.new_version}
    assert (history_dir(live) / "rolled-back").is_dir()
    for version, policy in found.items():
        assert policy.version == version


def test_each_version_keeps_its_own_rule_module(tmp_path):
    live = tmp_path / "policies" / "live.yaml"
    first = promote(_candidate(tmp_path / "c1", _doc(1, rule=True), "d/a"), live)
    second = promote(_candidate(tmp_path / "c2", _doc(1, rule=True), "d/b"), live)
    assert first.new_version != second.new_version  # only the module differs
    found = served_policies(live)
    assert _first_target(found[first.new_version], "r") == "d/a"  # the archived module, not the live one
    assert _first_target(found[second.new_version], "r") == "d/b"


def test_legacy_and_invalid_entries(tmp_path):
    live = tmp_path / "policies" / "live.yaml"
    live.parent.mkdir()
    live.write_text(yaml.safe_dump(_doc(1)))
    history = history_dir(live)
    history.mkdir(parents=True)
    (history / "20260101T000000000000Z-p-legacy.yaml").write_text(yaml.safe_dump(_doc(5)))  # before modules
    (history / "20260102T000000000000Z-invalid").mkdir()
    (history / "20260102T000000000000Z-invalid" / "policy.yaml").write_text("routes: {m: {targets: []}}\n")
    found = served_policies(live)
    assert len(found) == 2
    assert any(p.routes["m"].targets[0].weight == 5 for p in found.values())  # the legacy entry
    con = duckdb.connect()
    con.execute("CREATE TABLE requests (policy_version VARCHAR)")
    con.executemany("INSERT INTO requests VALUES (?)", [[v] for v in [*found, "p-gone", None]])
    assert missing_versions(found, con) == ["p-gone"]
    assert missing_versions(found, con, "policy_version <> 'p-gone'") == []


def test_a_hand_edit_is_not_archived(tmp_path):
    """Edited in place (the server hot-reloads it), the replaced version is gone: its rows are
    named by missing_versions; an invalid live file leaves the archived versions."""
    live = tmp_path / "policies" / "live.yaml"
    first = promote(_candidate(tmp_path / "c1", _doc(1)), live).new_version
    second = promote(_candidate(tmp_path / "c2", _doc(2)), live).new_version
    live.write_text(yaml.safe_dump(_doc(3)))  # by hand: `second` is not archived
    found = served_policies(live)
    assert first in found and second not in found and len(found) == 2
    con = duckdb.connect()
    con.execute("CREATE TABLE requests AS SELECT unnest([?, ?]) AS policy_version", [first, second])
    assert missing_versions(found, con) == [second]
    live.write_text("routes: {m: {targets: []}}\n")
    assert set(served_policies(live)) == {first}
