"""Bulk routing (replay's path) equals the live per-request ``plan_route`` — draw for draw,
reason for reason — for every kind of route, and the routing stage over a real log equals the
per-row replay it replaced."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmgw_kernel import load_policy
from llmgw_kernel.decisions.context import RouteContext, route_context
from llmgw_kernel.decisions.routing import (
    _u_text_index,
    _u_texts,
    draw,
    draws,
    needs_context,
    plan_route,
    plan_routes,
    replay_routing,
)

ROOT = Path(__file__).resolve().parents[2]
A, B, C = ({"provider": "p", "model": m} for m in ("a", "b", "c"))


def _policy(tmp_path: Path):
    folder = tmp_path / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "policies" / "tiers.py", folder / "tiers.py")
    doc = {
        "providers": {"p": {"kind": "demo"}},
        "routes": {
            "weighted": {"targets": [{**A, "weight": 70}, {**B, "weight": 25}, {**C, "weight": 5}]},
            "zero-weight": {"targets": [{**A, "weight": 0}, {**B, "weight": 1}, {**C, "weight": 0}]},
            "fractional": {"targets": [{**A, "weight": 0.1}, {**B, "weight": 0.2}, {**C, "weight": 0.3}]},
            "ordered": {"targets": [A, B, C]},
            "single": {"targets": [B]},
            "sticky-user": {"targets": [{**A, "weight": 50}, {**B, "weight": 50}], "sticky": "user"},
            "sticky-meta": {"targets": [{**A, "weight": 30}, {**C, "weight": 70}], "sticky": "metadata.session"},
            "rules": {
                "targets": [{**A, "weight": 50}, {**B, "weight": 50}],
                "rules": [
                    {"when": {"metadata": {"tier": "gold"}}, "targets": [C]},
                    {"when": {"prompt_tokens_over": 50}, "targets": [B, A]},
                ],
            },
            "function": {"targets": [A, B], "rule": "tiers:route_by_tier"},
        },
    }
    path = folder / "policy.yaml"
    path.write_text(orjson.dumps(doc).decode())
    return load_policy(path)


def _ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"req_{rng.getrandbits(96):024x}" for _ in range(n)] + ["", "é€🙂", "x" * 300]


def _contexts(ids: list[str], route: str) -> list[RouteContext]:
    out = []
    for i, rid in enumerate(ids):
        meta = {"tier": ["gold", "free", "silver"][i % 3], "session": f"s{i % 11}"} if i % 5 else {}
        body = {"messages": [{"role": "user", "content": "x" * (i % 400)}]}
        if i % 4:
            body["user"] = f"u{i % 13}"
        out.append(route_context(rid, route, body, meta))
    return out


def test_draws_are_bit_identical_to_draw() -> None:
    ids = _ids(10_000)
    for version in ("v1", "3f9a2c1b7d8e4f60", "é"):
        bulk = draws(version, ids)
        assert bulk.dtype == np.float64
        assert [float(u) for u in bulk] == [draw(version, rid) for rid in ids]  # exact, not approximate


def _reference_draw(version: str, key: str) -> float:
    """The draw as docs/routing.md defines it, written out independently of decisions.routing."""
    mask = (1 << 64) - 1

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    data = key.encode("utf-8")
    h = int.from_bytes(hashlib.blake2b(version.encode(), digest_size=8).digest(), "little")
    for at in range(0, len(data), 8):
        h = mix(h ^ int.from_bytes(data[at : at + 8].ljust(8, b"\0"), "little"))
    h = mix(h ^ len(data))
    return (h >> 11) / 2**53


def test_draw_is_the_documented_hash() -> None:
    ids = _ids(2_000)
    assert [draw("p-52948742ddd1", k) for k in ids] == [_reference_draw("p-52948742ddd1", k) for k in ids]


def test_draws_read_arrow_strings_in_place_of_every_shape() -> None:
    """Arrow input (what replay passes: no Python str per id) — sliced, chunked, large_string,
    dictionary-coded, keys of many lengths, empty and non-ASCII — draws as :func:`draw` does."""
    rng = random.Random(11)
    mixed = _ids(3_000) + ["".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(0, 40)))
                                        for _ in range(3_000)]  # fmt: skip
    want = [draw("v9", k) for k in mixed]
    arr = pa.array(mixed, pa.string())
    assert draws("v9", arr).tolist() == want
    assert draws("v9", arr.slice(1_234)).tolist() == want[1_234:]
    assert draws("v9", pa.chunked_array([arr.slice(0, 10), arr.slice(10)])).tolist() == want
    assert draws("v9", arr.cast(pa.large_string())).tolist() == want
    assert draws("v9", arr.dictionary_encode()).tolist() == want
    same_length = pa.array(_ids(70_000)[:70_000])  # one length, more than one batch
    assert draws("v9", same_length).tolist() == [draw("v9", k) for k in same_length.to_pylist()]
    with pytest.raises(ValueError, match="NULL"):
        draws("v9", pa.array(["a", None]))


def test_reason_text_of_a_draw_matches_python_formatting_near_ties() -> None:
    ks = np.arange(0, 10_000)
    near = np.concatenate([(ks + 0.5) / 1e4, np.nextafter((ks + 0.5) / 1e4, 0), np.nextafter((ks + 0.5) / 1e4, 1)])
    u = np.concatenate([near, np.random.default_rng(3).random(50_000), [0.0, 0.99995, 0.999999999]])
    u = u[u < 1.0]
    texts = _u_texts()
    assert [texts[k] for k in _u_text_index(u)] == [f"{x:.4f}" for x in u.tolist()]


@pytest.mark.parametrize(
    "route", ["weighted", "zero-weight", "fractional", "ordered", "single", "sticky-user", "sticky-meta", "rules",
              "function"],
)  # fmt: skip
def test_bulk_plans_equal_plan_route_per_request(tmp_path: Path, route: str) -> None:
    policy = _policy(tmp_path)
    ids = _ids(10_000)
    contexts = _contexts(ids, route)
    bulk = plan_routes(policy, route, ids, contexts)
    assert len(bulk.codes) == len(ids) == len(bulk.reason_codes)
    for i, (rid, ctx) in enumerate(zip(ids, contexts, strict=True)):
        assert bulk.plan(i) == plan_route(policy, route, rid, ctx), (route, rid)
    assert len(bulk.plans) <= 3  # interned: a few distinct orders, not one per request


def test_only_routes_that_read_the_request_need_a_context(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    assert {r for r in policy.routes if needs_context(policy, r)} == {"sticky-user", "sticky-meta", "rules", "function"}
    ids = _ids(500)
    # without contexts they see the empty context, as plan_route(ctx=None) does
    bulk = plan_routes(policy, "sticky-user", ids)
    assert [bulk.plan(i) for i in range(len(ids))] == [plan_route(policy, "sticky-user", r) for r in ids]


def test_weighted_reasons_say_the_draw_and_are_shared(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    ids = _ids(20_000)
    bulk = plan_routes(policy, "weighted", ids)
    assert all(r.startswith("weighted draw u=") for r in bulk.reasons)
    assert len(bulk.reasons) <= 3 * 10_001
    shares = np.bincount(bulk.codes, minlength=3) / len(ids)
    assert abs(shares[0] - 0.70) < 0.02 and abs(shares[2] - 0.05) < 0.01


def test_unknown_route_raises_like_plan_route(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    with pytest.raises(KeyError):
        plan_route(policy, "nope", "r1")
    with pytest.raises(KeyError):
        plan_routes(policy, "nope", ["r1"])


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0, 0.001, 0.1, 1, 3, 7.5, 50, 1e6]), min_size=2, max_size=5),
    ids=st.lists(st.text(max_size=40), min_size=1, max_size=60),
)
def test_property_bulk_equals_live(weights: list[float], ids: list[str]) -> None:
    if not any(weights):
        weights = [*weights[:-1], 1]
    targets = [{"provider": "p", "model": f"m{i}", "weight": w} for i, w in enumerate(weights)]
    policy = load_policy({"providers": {"p": {"kind": "demo"}}, "routes": {"r": {"targets": targets}}})
    bulk = plan_routes(policy, "r", ids)
    assert [bulk.plan(i) for i in range(len(ids))] == [plan_route(policy, "r", rid) for rid in ids]


# -- the routing stage over a real log ---------------------------------------------------------
def _write_log(data_dir: Path, n: int) -> None:
    from llmgw_kernel.log.record import RequestRecord
    from llmgw_kernel.log.writer import LogWriter

    routes = ["weighted", "ordered", "single", "sticky-user", "sticky-meta", "rules", "function", "gone", None]
    writer = LogWriter(data_dir, flush_ms=3_600_000, journal=False)
    rng = random.Random(11)
    for i in range(n):
        rec = RequestRecord(f"req_{rng.getrandbits(64):016x}", 1_790_000_000 + i * 0.37, "chat.completions")
        rec.route = routes[i % len(routes)]
        rec.metadata = {"tier": ["gold", "free"][i % 2], "session": f"s{i % 7}"} if i % 3 else None
        body = {"model": rec.route, "messages": [{"role": "user", "content": "y" * (i % 300)}]}
        if i % 4:
            body["user"] = f"u{i % 5}"
        rec.request_raw = orjson.dumps(body) if i % 10 else b"{not json"
        if i % 17 == 0:
            rec.api = "anthropic"
            rec.request_raw = orjson.dumps({**body, "max_tokens": 5})
        if rec.route is None:
            rec.error_type = "invalid_request_error"
        elif rec.route == "gone" or i % 23 == 0:
            rec.error_type = "model_not_found"
        else:
            rec.plan = ("p/a", "p/b") if i % 2 else ("p/b",)
            rec.usage = {"prompt_tokens": i % 50, "completion_tokens": i % 9}
            rec.target = rec.plan[0]
            rec.attempts = [{"target": rec.plan[0], "status": 200, "latency_ms": 100.0 + i % 70, "error": None}]
        writer.append(rec)
        if i % 400 == 399:
            writer.flush()
    writer.close()


def test_routing_stage_equals_the_per_row_replay(tmp_path: Path) -> None:
    from llmgw_kernel.replay.routing_stage import logged_context, replay_routing_stage, summarize_routing
    from llmgw_kernel.replay.window import load_window

    policy = _policy(tmp_path)
    _write_log(tmp_path / "data", 2_000)
    window = load_window(tmp_path / "data")
    cols, differs = replay_routing_stage(policy, window)
    expected_plans, expected_reasons, expected_differs = [], [], []
    for i in range(len(window)):
        logged = window["plan"][i]
        ctx = logged_context(window, i) if window["route"][i] is not None else None
        d = replay_routing(policy, window["request_id"][i], window["route"][i], logged, window["error_type"][i], ctx)
        plan = list(d.targets) if d is not None else None
        expected_plans.append(plan)
        expected_reasons.append(d.reason if d is not None else None)
        expected_differs.append((logged or None) != (plan or None))
    assert list(cols["replay_plan"]) == expected_plans
    assert list(cols["replay_route_reason"]) == expected_reasons
    assert list(cols["replay_target"]) == [p[0] if p else None for p in expected_plans]
    assert list(cols["logged_target"]) == [p[0] if p else None for p in window["plan"]]
    assert differs == expected_differs
    assert any(differs) and not all(differs)
    routing = summarize_routing(policy, window, cols)["routing"]
    routed = [p[0] for p in expected_plans if p]
    assert routing["routed"] == len(routed)
    assert routing["unknown_model"] == sum(1 for p in expected_plans if p == [])
    assert routing["first_target_share"] == {t: round(routed.count(t) / len(routed), 6) for t in sorted(set(routed))}


def test_routing_stage_with_a_policy_per_row(tmp_path: Path) -> None:
    from llmgw_kernel.replay.routing_stage import logged_context, replay_routing_stage
    from llmgw_kernel.replay.window import load_window

    first = _policy(tmp_path / "a")
    doc = {"providers": {"p": {"kind": "demo"}},
           "routes": {"weighted": {"targets": [{**C, "weight": 1}, {**A, "weight": 1}]}, "ordered": {"targets": [C]}}}  # fmt: skip
    second = load_policy(doc)
    _write_log(tmp_path / "data", 600)
    window = load_window(tmp_path / "data")
    row_policies = [first if i % 3 else second for i in range(len(window))]
    cols, differs = replay_routing_stage(first, window, row_policies)
    for i, pol in enumerate(row_policies):
        route = window["route"][i]
        ctx = logged_context(window, i) if route is not None else None
        d = replay_routing(pol, window["request_id"][i], route, window["plan"][i], window["error_type"][i], ctx)
        assert cols["replay_plan"][i] == (list(d.targets) if d is not None else None), i
        assert cols["replay_route_reason"][i] == (d.reason if d is not None else None), i


def test_routing_stage_reads_a_dict_of_lists_as_a_window(tmp_path: Path) -> None:
    from llmgw_kernel.replay.routing_stage import replay_routing_stage, summarize_routing
    from llmgw_kernel.replay.window import load_window

    policy = _policy(tmp_path)
    _write_log(tmp_path / "data", 300)
    window = load_window(tmp_path / "data")
    as_lists = {name: list(window[name]) for name in window.columns if name != "embedding"}
    as_lists["metadata"] = [orjson.loads(m) if m else None for m in as_lists["metadata"]]  # parsed JSON too
    cols, differs = replay_routing_stage(policy, window)
    cols2, differs2 = replay_routing_stage(policy, as_lists)
    assert differs2 == differs
    assert {k: list(v) for k, v in cols2.items()} == {k: list(v) for k, v in cols.items()}
    assert summarize_routing(policy, as_lists, cols2) == summarize_routing(policy, window, cols)
