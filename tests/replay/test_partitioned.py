"""Partitioned replay (llmgw_kernel.replay.engines) equals the single-process replay exactly.

The log is real: a `llmgw serve` with virtual keys (created through the admin API; one with a
budget of its own, one with an rpm of its own), team and user budgets that run out, route and
key rpm limits, an exact cache with hits across requests and several routes, driven by the
official `openai` SDK. Candidates are replayed with `replay()` and with
`replay_partitioned(..., partitions=3)` on local processes and on a local Dask cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import httpx
import openai
import pandas as pd
import pytest
from conftest import UPSTREAM_KEY, Gateway

from llmgw_kernel import load_policy, open_log, replay
from llmgw_kernel.keys.store import KeyHistory
from llmgw_kernel.replay.engines import replay_partitioned
from llmgw_kernel.replay.partition import ESTIMATES, plan_partitions

ADMIN = "admin-token-partitioned-replay"
PRICE = {"input_per_1m": 1000.0, "output_per_1m": 1000.0}  # the fake's 11 + 7 tokens: $0.018
CHEAP, STRONG = {"provider": "local", "model": "gpt-4o-mini"}, {"provider": "other", "model": "gpt-4o"}
#: key -> (its settings, the routes it sends to, the body `user`s it sends): three groups of keys
#: and routes that share no limit or cache namespace, so a candidate can be split in three
KEYS = {
    "alpha": ({"team": "search", "user": "u-alice", "budget_usd": 0.3}, ("split",), (None,)),
    "beta": ({"team": "search"}, ("split", "fallback"), ("u-erin", None)),
    "gamma": ({"team": "ads", "user": "u-carol", "rpm": 25}, ("cached", "limited"), (None,)),
    "delta": ({"team": "ads"}, ("cached",), (None,)),
    "eps": ({"team": "labs"}, ("solo", "mini"), ("u-bob", None)),
    "zeta": ({}, ("solo",), ("u-bob", "u-dan", None)),
}


def live_policy(upstream_url: str) -> dict:
    return {
        "providers": {
            "local": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LOCAL_API_KEY"},
            "other": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LOCAL_API_KEY"},
        },
        "routes": {
            "split": {"targets": [{**CHEAP, "weight": 60}, {**STRONG, "weight": 40}]},
            "fallback": {"targets": [{"provider": "local", "model": "status-503"}, STRONG]},
            # 10 answers (5 prompts x 2 keys) in a store of 6: live evictions couple the route
            "cached": {"targets": [CHEAP], "cache": {"exact": {"ttl_s": 600, "max_entries": 6}}},
            "limited": {"targets": [CHEAP]},
            "solo": {"targets": [STRONG]},
            "mini": {"targets": [CHEAP]},
        },
        "pricing": {"gpt-4o-mini": PRICE, "gpt-4o": PRICE},
        "budgets": {
            "timezone": "UTC",
            "default_max_tokens": 50,
            "limits": [
                {"scope": "team", "name": "search", "usd": 0.9, "window": "day"},
                {"scope": "user", "name": "u-bob", "usd": 0.2, "window": "month"},
            ],
        },
        "rate_limits": [{"scope": "route", "name": "limited", "rpm": 6}],
        "log": {"flush_ms": 100},
    }


def _draw(i: int, what: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{i}|{what}".encode(), digest_size=8).digest(), "big")


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    """A real server's log of 240 requests over six keys and five routes."""
    tmp = tmp_path_factory.mktemp("partitioned")
    doc = live_policy(upstream.base_url)
    gw = Gateway(tmp, doc, {"LLMGW_ADMIN_TOKEN": ADMIN, "LOCAL_API_KEY": UPSTREAM_KEY})
    try:
        secrets = {}
        for name, (settings, _, _) in KEYS.items():
            r = httpx.post(f"{gw.url}/admin/virtual-keys", json={"name": name, **settings},
                           headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
            secrets[name] = r.json()["key"]
        clients = {k: openai.OpenAI(base_url=gw.base_url, api_key=s, max_retries=0) for k, s in secrets.items()}
        names = list(KEYS)
        for i in range(240):
            key = names[_draw(i, "key") % len(names)]
            routes = KEYS[key][1]
            route = routes[_draw(i, "route") % len(routes)]
            users = KEYS[key][2]
            user = users[_draw(i, "user") % len(users)]
            prompt = f"question {_draw(i, 'prompt') % 5} from {key}"  # repeats: exact-cache hits
            extra = {"user": user} if user else {}
            with contextlib.suppress(openai.APIStatusError):  # a refusal is logged all the same
                clients[key].chat.completions.create(
                    model=route, messages=[{"role": "user", "content": prompt}], max_tokens=20, **extra
                )
        for c in clients.values():
            c.close()
    finally:
        gw.terminate()
    return gw, doc


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, path) if isinstance(v, dict) and v else {path: v})
    return out


def _assert_same(single, parted) -> None:
    """Decisions equal exactly; the summary equal on every figure the merge does not mark."""
    pd.testing.assert_frame_equal(parted.decisions, single.decisions, check_exact=True)
    part = parted.summary["partitioning"]
    skipped = tuple(part["not_merged"])
    want = {k: v for k, v in _flat(single.summary).items() if not k.startswith(skipped or ("\0",))}
    got = {k: v for k, v in _flat(parted.summary).items() if not k.startswith(("partitioning", *skipped))}
    assert got == want
    if part["partitions"] == 1:
        assert not skipped
    assert parted.differences == single.differences
    assert parted.compare_to_log() == single.compare_to_log()


def candidate(doc: dict, **changes) -> dict:
    import copy

    new = copy.deepcopy(doc)
    new["routes"]["split"]["targets"] = [{**CHEAP, "weight": 10}, {**STRONG, "weight": 90}]
    new["budgets"]["limits"][0]["usd"] = 0.5  # search runs out sooner
    new["budgets"]["limits"].append({"scope": "team", "name": "labs", "usd": 0.25, "window": "day"})
    new["rate_limits"].append({"scope": "key", "rpm": 30})
    new["routes"]["cached"]["cache"] = {"exact": {"ttl_s": 20}, "namespace": ["team"]}
    new.update(changes)
    return new


def test_the_log_has_what_couples_requests(served):
    gw, _ = served
    con = open_log(gw.data_dir)
    got = dict(con.execute("SELECT coalesce(admission, 'none'), count(*) FROM requests GROUP BY 1").fetchall())
    assert got.get("budget_exceeded", 0) > 5 and got.get("rate_limited", 0) > 3, got
    hits = con.execute("SELECT count(*) FROM requests WHERE cache = 'hit'").fetchone()[0]
    assert hits > 10
    evicted = con.execute(  # a miss whose exact key was stored before, within the TTL: evicted
        "SELECT count(*) FROM requests a WHERE cache = 'miss' AND EXISTS (SELECT 1 FROM requests b WHERE"
        " b.cache_key = a.cache_key AND b.key_id = a.key_id AND b.cache_stored_ts < epoch(a.ts))"
    ).fetchone()[0]
    assert evicted > 0
    assert con.execute("SELECT count(DISTINCT route), count(DISTINCT key_id) FROM requests").fetchone() == (6, 6)


def test_local_partitions_equal_one_process(served):
    """The live policy replaying its own log (no estimate read): split in three."""
    gw, doc = served
    single = replay(doc, gw.data_dir)
    parted = replay_partitioned(doc, gw.data_dir, engine="local", partitions=3)
    assert parted.summary["partitioning"]["partitions"] == 3, parted.summary["partitioning"]
    assert single.compare_to_log() == 0
    _assert_same(single, parted)
    # additive figures are merged, whole-window ones recomputed, the rest named
    assert parted.summary["limits"]["refused"] == single.summary["limits"]["refused"] > 0
    assert parted.summary["cache"]["hit_rate"] == single.summary["cache"]["hit_rate"]
    assert "routing.estimates.latency_ms_p50" in parted.summary["partitioning"]["not_merged"]


@pytest.mark.parametrize("which", ["candidate", "routing-only"])
def test_a_candidate_splits_with_the_whole_windows_estimates(served, which):
    """A candidate's costs are estimated from whole-window statistics: every partition is given
    the whole window's (``replay(..., estimates=...)``), so only state couples requests."""
    gw, doc = served
    pol = candidate(doc)
    if which == "routing-only":
        pol = {k: v for k, v in pol.items() if k not in ("budgets", "rate_limits")}
        pol["routes"] = {r: {k: v for k, v in spec.items() if k != "cache"} for r, spec in pol["routes"].items()}
    single = replay(pol, gw.data_dir)
    parted = replay_partitioned(pol, gw.data_dir, engine="local", partitions=3)
    assert parted.summary["partitioning"]["partitions"] > 1
    assert ESTIMATES not in parted.summary["partitioning"]["notes"]
    assert single.compare_to_log() > 0  # the candidate does change decisions
    _assert_same(single, parted)


def test_a_window_with_warmup_equals_one_process(served):
    gw, doc = served
    con = open_log(gw.data_dir)
    middle = con.execute("SELECT ts FROM requests ORDER BY ts LIMIT 1 OFFSET 120").fetchone()[0]
    single = replay(doc, gw.data_dir, since=middle)
    parted = replay_partitioned(doc, gw.data_dir, since=middle, partitions=3)
    assert single.summary["requests"] == 120 and parted.summary["partitioning"]["partitions"] == 3
    _assert_same(single, parted)


def test_dask_partitions_equal_one_process(served):
    pytest.importorskip("distributed", reason="the [distributed] extra is not installed")
    gw, doc = served
    single = replay(doc, gw.data_dir)
    parted = replay_partitioned(doc, gw.data_dir, engine="dask", partitions=3)
    assert parted.summary["partitioning"]["engine"] == "dask"
    assert parted.summary["partitioning"]["partitions"] == 3
    _assert_same(single, parted)


def test_ray_partitions_equal_one_process(served):
    """Ray is supported but not the recommended engine (docs/replay-distributed.md): this runs
    where the [ray] extra is installed."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    gw, doc = served
    single = replay(doc, gw.data_dir)
    parted = replay_partitioned(doc, gw.data_dir, engine="ray", partitions=2)
    assert parted.summary["partitioning"]["engine"] == "ray"
    assert parted.summary["partitioning"]["partitions"] == 2
    _assert_same(single, parted)


def test_a_global_budget_makes_one_partition(served):
    gw, doc = served
    budgets = {**doc["budgets"], "limits": [*doc["budgets"]["limits"], {"scope": "global", "usd": 2.0}]}
    pol = {**doc, "budgets": budgets}
    parted = replay_partitioned(pol, gw.data_dir, partitions=3)
    part = parted.summary["partitioning"]
    assert part["partitions"] == 1 and "global" in part["notes"][0]
    _assert_same(replay(pol, gw.data_dir), parted)


def test_the_plan_groups_exactly_what_couples(served):
    """Every coupled pair shares a partition, and the plan is not one partition in disguise."""
    gw, doc = served
    con = open_log(gw.data_dir)
    pol = load_policy(candidate(doc))
    plan = plan_partitions(pol, con, None, None, 3, KeyHistory.load(gw.data_dir), shared_estimates=True)
    con.register("plan", plan.table)
    rows = con.execute(
        "SELECT r.request_id, key_id, team, end_user, route, endpoint, p.partition FROM requests r"
        " JOIN plan p USING (request_id)"
    ).fetchall()
    assert len(rows) == 240 and plan.partitions == 3
    by = {}
    for _, key_id, team, user, route, endpoint, p in rows:
        for what in (("key", key_id), ("team", team), ("user", user)):
            if what[1] is not None:
                by.setdefault(what, set()).add(p)
        if route == "cached" and endpoint == "chat.completions":
            by.setdefault(("namespace", route, team), set()).add(p)
    assert all(len(ps) == 1 for ps in by.values()), {k: v for k, v in by.items() if len(v) > 1}
    assert min(plan.rows) >= 240 // 10  # balanced enough to be worth it
    # the live policy names its limits' subjects; keys' own budgets and rpm come from the key history
    history = KeyHistory.load(gw.data_dir)
    live = plan_partitions(load_policy(doc), con, None, None, 3, history, shared_estimates=True).coupling
    own = {ev["id"] for ev in history.events if ev["settings"]["name"] in ("alpha", "gamma")}
    assert live.scopes == {"team": {"search"}, "user": {"u-bob"}, "route": {"limited"}, "key": own}
    assert live.evicting_routes == {"cached"}  # more answers within a TTL than the store holds
    roomy = candidate(doc)
    roomy["routes"]["cached"]["cache"]["exact"] = {"ttl_s": 0.001, "max_entries": 30}  # ~64 rows in ~1 s
    loose = plan_partitions(load_policy(roomy), con, None, None, 3, history, shared_estimates=True)
    assert loose.coupling.evicting_routes == set()  # every evicted answer has expired: no coupling


def test_semantic_candidates_couple_rows_by_raw_cache_key(served):
    """A live exact hit borrows the embedding of the first earlier request with its raw key,
    whatever that one's namespace: on a semantic route the raw key couples them."""
    gw, doc = served
    con = open_log(gw.data_dir)
    pol = candidate(doc)
    pol["routes"]["cached"]["cache"] = {"exact": {"ttl_s": 600}, "semantic": {"threshold": 0.9}, "namespace": ["key"]}
    plan = plan_partitions(load_policy(pol), con, None, None, 3, KeyHistory.load(gw.data_dir), shared_estimates=True)
    assert "borrowed embeddings (raw cache_key): cached" in plan.coupling.describe()
    con.register("plan", plan.table)
    spread = con.execute(
        "SELECT count(*) FROM (SELECT cache_key FROM requests JOIN plan USING (request_id)"
        " WHERE route = 'cached' AND cache_key IS NOT NULL GROUP BY cache_key HAVING count(DISTINCT partition) > 1)"
    ).fetchone()[0]
    assert spread == 0


def test_an_unknown_engine_is_refused(served):
    gw, doc = served
    with pytest.raises(ValueError, match="engine must be one of"):
        replay_partitioned(doc, gw.data_dir, engine="spark")  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__))]))
