"""A log written before the weighted draw changed (2026-12-05: blake2b-64 -> the splitmix64 fold)
replays its own weighted routes exactly: each row says which draw routed it (``route_draw``; a
segment written before the column reads it as NULL, which means the first draw), and replay draws
each row by its own. Real log: segments written by :class:`LogWriter`, one of them rewritten
without the column as an older release wrote it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from llmgw_kernel import load_policy, replay
from llmgw_kernel.decisions.context import RouteContext
from llmgw_kernel.decisions.routing import (
    draw,
    draw_function,
    draw_v1,
    draws_by_row,
    draws_v1,
    plan_route,
    plan_routes,
)
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.schema import ROUTE_DRAW, ROUTE_DRAW_V1
from llmgw_kernel.log.segments import list_segments, log_dir
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.policy.model import Policy, Target
from llmgw_kernel.replay.window import load_window

T0 = 1_790_000_000.0
POLICY = {
    "providers": {"a": {"kind": "demo"}, "b": {"kind": "demo"}, "c": {"kind": "demo"}},
    "routes": {
        "split": {
            "targets": [
                {"provider": "a", "model": "x", "weight": 50},
                {"provider": "b", "model": "x", "weight": 30},
                {"provider": "c", "model": "x", "weight": 20},
            ]
        },  # fmt: skip
        "sticky": {
            "sticky": "user",
            "targets": [{"provider": "a", "model": "x", "weight": 50}, {"provider": "b", "model": "x", "weight": 50}],
        },
    },
}
OLD_ROWS, NEW_ROWS = 300, 200


def _reference_v1(version: str, key: str) -> float:
    """The first draw as the release before 2026-12-05 computed it, written out independently."""
    digest = hashlib.blake2b(f"{version}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _first_by(targets: list[Target], u: float) -> int:
    """The weighted pick (the first target whose running sum of weights exceeds u x total)."""
    total, acc = sum(t.weight or 0.0 for t in targets), 0.0
    for i, t in enumerate(targets):
        acc += t.weight or 0.0
        if u * total < acc:
            return i
    return len(targets) - 1


def _old_plan(policy: Policy, route: str, key: str) -> tuple[str, ...]:
    targets = list(policy.routes[route].targets)
    i = _first_by(targets, _reference_v1(policy.version, key))
    return (targets[i].id, *(t.id for k, t in enumerate(targets) if k != i))


def _record(policy: Policy, i: int, old: bool) -> RequestRecord:
    rec = RequestRecord(f"req_{i:06d}_{'o' if old else 'n'}", T0 + i, "chat.completions")
    rec.route = "sticky" if i % 3 == 0 else "split"
    rec.policy_version = policy.version
    user = f"user-{i % 17}"
    rec.metadata = {"user": user}
    key = f"user={user}" if rec.route == "sticky" else rec.request_id
    if old:
        rec.plan = _old_plan(policy, rec.route, key)
    else:
        rec.plan = plan_route(
            policy, rec.route, rec.request_id, RouteContext(rec.request_id, rec.route, user=user)
        ).targets
    rec.target = rec.plan[0]
    rec.attempts = [{"target": rec.target, "status": 200, "latency_ms": 50.0, "error": None}]
    rec.outcome, rec.status, rec.latency_ms = "ok", 200, 60.0
    rec.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return rec


def _drop_route_draw(path: Path) -> None:
    """Rewrite a segment as a release before the column wrote it (no ``route_draw``)."""
    tmp = path.with_name(f".{path.name}.old.tmp")
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT * EXCLUDE (route_draw) FROM read_parquet('{path}')) TO '{tmp}' (FORMAT parquet)")
    finally:
        con.close()
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def upgraded_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Policy]:
    """A data directory whose first segment an older release wrote (first draw, no column) and
    whose second this release wrote (current draw, route_draw 2)."""
    root = tmp_path_factory.mktemp("upgraded")
    policy = load_policy(POLICY)
    writer = LogWriter(root, flush_ms=3_600_000, journal=False)
    for i in range(OLD_ROWS):
        writer.append(_record(policy, i, old=True))
    writer.flush()
    old_segments = [s.path for s in list_segments(log_dir(root)) if s.lo > 0]
    for i in range(OLD_ROWS, OLD_ROWS + NEW_ROWS):
        writer.append(_record(policy, i, old=False))
    writer.close()
    assert len(old_segments) == 1
    for path in old_segments:
        _drop_route_draw(path)
    return root, policy


def test_a_log_written_before_the_draw_change_replays_with_zero_differences(upgraded_log: tuple[Path, Policy]) -> None:
    root, policy = upgraded_log
    window = load_window(root)
    kinds = window.arrow("route_draw").to_pylist()
    assert kinds.count(None) == OLD_ROWS and kinds.count(ROUTE_DRAW) == NEW_ROWS  # both kinds of row are there
    # the old rows' logged plans are ones the current draw would not make (so the test can fail)
    ids, routes, plans = window["request_id"], window["route"], window["plan"]
    redrawn = [plan_route(policy, r, rid).targets for rid, r in zip(ids, routes, strict=True) if r == "split"]
    logged_split = [tuple(p) for p, r in zip(plans, routes, strict=True) if r == "split"]
    assert sum(a != b for a, b in zip(redrawn, logged_split, strict=True)) > 50
    result = replay(policy, root)
    assert result.summary["requests"] == OLD_ROWS + NEW_ROWS
    assert result.compare_to_log() == 0
    assert result.summary["routing"]["first_target_changed"] == 0


def test_a_candidate_draws_old_rows_by_the_first_draw(upgraded_log: tuple[Path, Policy]) -> None:
    """A candidate (another version) draws afresh, each row by the function that routed it."""
    root, policy = upgraded_log
    doc = {**POLICY, "routes": {**POLICY["routes"], "split": {"targets": [
        {"provider": "a", "model": "x", "weight": 10}, {"provider": "b", "model": "x", "weight": 90}]}}}  # fmt: skip
    candidate = load_policy(doc)
    frame = replay(candidate, root).decisions
    for rid, route, plan in zip(frame["request_id"], frame["route"], frame["replay_plan"], strict=True):
        if route != "split":
            continue
        u = (_reference_v1 if rid.endswith("_o") else draw)(candidate.version, rid)
        assert plan[0] == ("a/x" if u * 100 < 10 else "b/x"), rid


def test_draw_v1_is_the_first_draw_and_draws_by_row_picks_each_rows_function() -> None:
    keys = [f"req_{i:05d}" for i in range(300)] + ["", "é-ünï", "user=ann", "x" * 40]
    assert [draw_v1("p-1", k) for k in keys] == [_reference_v1("p-1", k) for k in keys]
    assert draws_v1("p-1", pa.array(keys)).tolist() == [_reference_v1("p-1", k) for k in keys]
    kinds = np.asarray([ROUTE_DRAW_V1 if i % 3 else ROUTE_DRAW for i in range(len(keys))], np.int8)
    got = draws_by_row("p-1", pa.array(keys), kinds).tolist()
    assert got == [draw_function(int(k))("p-1", key) for k, key in zip(kinds, keys, strict=True)]
    assert draws_by_row("p-1", keys, np.full(len(keys), ROUTE_DRAW, np.int8)).tolist() == [draw("p-1", k) for k in keys]
    with pytest.raises(ValueError, match="route_draw 3"):
        draws_by_row("p-1", keys, np.full(len(keys), 3, np.int8))


def test_plan_routes_by_row_equals_plan_route_with_each_rows_draw() -> None:
    policy = load_policy(POLICY)
    ids = [f"req_{i:05d}" for i in range(500)]
    kinds = np.asarray([ROUTE_DRAW_V1 if i % 2 else ROUTE_DRAW for i in range(500)], np.int8)
    bulk = plan_routes(policy, "split", pa.array(ids), None, kinds)
    assert [bulk.plan(i) for i in range(500)] == [plan_route(policy, "split", r, None, int(k))
                                                  for r, k in zip(ids, kinds, strict=True)]  # fmt: skip
    ctxs = [RouteContext(r, "sticky", user=f"u{i % 7}") for i, r in enumerate(ids)]
    bulk = plan_routes(policy, "sticky", ids, ctxs, kinds)
    assert [bulk.plan(i) for i in range(500)] == [plan_route(policy, "sticky", r, c, int(k))
                                                  for r, c, k in zip(ids, ctxs, kinds, strict=True)]  # fmt: skip
