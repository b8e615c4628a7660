"""The compiled fold (``replay/fold_kernel.py``) decides exactly what the Python fold
(``Composer.run``) decides: every field of ``Folded``, for every request, compared with ``==``
(floats bit for bit: a budget cut-off flips on the last bit of a sum).

Logs: the synthetic log of ``benchmarks/replay_scale.py`` (written through the real log writer
by the live decision functions) at 20k rows, under the live policy and candidates that refuse
by budget and by rate (rpm and tpm), evict from a small cache, turn the cache off, reweight the
routes, and start mid-window (the start state and the warm cache from the log); the composition
test's log served by a real ``llmgw serve``; and small logs with seeded random candidates.
"""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from parity_traffic import ParityRun, request_mix
from test_composition import composed_policy, served  # noqa: F401  (a fixture: the served log)
from test_fold_semantic import assert_store_is_live

from llmgw_kernel import load_policy
from llmgw_kernel.cache.exact import Entry, ExactStore
from llmgw_kernel.cache.semantic import EXACT_MAX
from llmgw_kernel.decisions.limits import RateWindow
from llmgw_kernel.log.reader import open_log
from llmgw_kernel.replay import _state_before, fold_kernel, fold_semantic, load_window
from llmgw_kernel.replay.fold import Composer, Folded
from llmgw_kernel.replay.fold_kernel import run_compiled
from llmgw_kernel.replay.stages import decide

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


def composer(data_dir: Path, doc: dict[str, Any], tmp: Path, since: datetime | None = None) -> Composer:
    """The composed replay of ``doc`` over the log in ``data_dir``, prepared, not run."""
    path = tmp / f"policy-{abs(hash(yaml.safe_dump(doc)))}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    pol = load_policy(path)
    con = open_log(str(data_dir))
    window = load_window(con, since, None)
    history, start, warm = _state_before(pol, con, window, since)
    return decide(pol, window, history, start, warm, fold=False).composer


def assert_same(c: Composer) -> Folded:
    """Run both folds and compare every field; returns the Python fold's result."""
    expected = c.run(compiled=False)
    got = run_compiled(c)
    assert got is not None, "the kernel declined a replay it supports"
    for name in ("admission", "admission_reason", "admission_limit", "cost", "served_by", "saved"):
        want, have = getattr(expected, name), getattr(got, name)
        diff = [i for i, (a, b) in enumerate(zip(want, have, strict=True)) if a != b or type(a) is not type(b)]
        assert not diff, f"{name} differs at {len(diff)} rows, first {diff[0]}: {want[diff[0]]!r} != {have[diff[0]]!r}"
    for i, (a, b) in enumerate(zip(expected.cache, got.cache, strict=True)):
        if a is None or b is None:
            assert a is b, f"cache at {i}: {a} vs {b}"
            continue
        assert (a.kind, a.reason, a.source, a.similarity) == (b.kind, b.reason, b.source, b.similarity), i
    assert expected.unpriced == got.unpriced
    return expected


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scale") / "log"
    replay_scale.generate(d, 20_000)
    return d


def live() -> dict[str, Any]:
    return replay_scale.policy_doc("live")


def tight() -> dict[str, Any]:
    """Budgets that refuse part way through (team, user, global; day, week, month; one soft) and
    rate limits on tokens and requests."""
    doc = live()
    doc["budgets"] = {
        "timezone": "Europe/Paris",
        "limits": [
            {"scope": "team", "name": "search", "usd": 2.0, "window": "day"},
            {"scope": "team", "usd": 1.2, "window": "week"},
            {"scope": "user", "usd": 0.004, "window": "month"},
            {"scope": "global", "usd": 5.0, "window": "day", "mode": "soft"},
        ],
    }
    # team tpm: the log's largest team sends ~57% of the traffic (the traffic profile's four teams)
    doc["rate_limits"] = [{"scope": "key", "rpm": 40}, {"scope": "team", "tpm": 300000}, {"scope": "route", "rpm": 500}]
    return doc


def test_the_kernel_folds_the_live_policy_exactly(synthetic, tmp_path):
    out = assert_same(composer(synthetic, live(), tmp_path))
    assert out.admission.count("rate_limited") > 50 and sum(o is not None and o.kind == "hit" for o in out.cache) > 1000


def test_budget_and_rate_refusals_match_to_the_last_bit(synthetic, tmp_path):
    out = assert_same(composer(synthetic, tight(), tmp_path))
    reasons = {r.split(" limit")[0].split(" budget")[0] for r in out.admission_reason if r}
    assert out.admission.count("budget_exceeded") > 500 and out.admission.count("rate_limited") > 500
    assert any(r.startswith("user") for r in reasons) and any("team" in r for r in reasons), reasons


@pytest.mark.parametrize("ttl, size", [(90, 150), (5, 400)])  # full before expiry; expired keys stored again
def test_a_small_cache_evicts_as_the_live_store_does(synthetic, tmp_path, ttl, size):
    doc = tight()
    doc["cache"] = {"exact": {"ttl_s": ttl, "max_entries": size}}
    doc["routes"]["chat"]["targets"][0]["weight"] = 10  # other weights: other costs, other cut-offs
    out = assert_same(composer(synthetic, doc, tmp_path))
    # 35 at ttl 5 s on the traffic profile's log (a key's repeats within 5 s, at most 40 admitted a minute)
    assert sum(o is not None and o.kind == "hit" for o in out.cache) > 25


def test_cache_off_and_no_limits(synthetic, tmp_path):
    doc = live()
    del doc["cache"], doc["budgets"], doc["rate_limits"]
    out = assert_same(composer(synthetic, doc, tmp_path))
    assert all(o is None for o in out.cache) and set(out.admission) == {None}


def test_a_window_starting_mid_log_starts_from_the_logged_state(synthetic, tmp_path):
    """The start state (spend so far, the last minute's admissions) and the warm cache seed the kernel."""
    first = open_log(str(synthetic)).execute("SELECT epoch(min(ts)), epoch(max(ts)) FROM requests").fetchone()
    since = datetime.fromtimestamp(float(first[0] + (first[1] - first[0]) / 2), UTC)
    doc = tight()
    doc["budgets"]["limits"][1]["window"] = "day"
    c = composer(synthetic, doc, tmp_path, since=since)
    assert c.start.committed and c.start.windows and c.warm
    out = assert_same(c)
    assert out.admission.count("budget_exceeded") > 100


def test_the_composition_log_served_by_llmgw_serve(served, tmp_path):  # noqa: F811
    gw, _ = served
    doc = yaml.safe_load(Path(gw.policy_path).read_text())
    out = assert_same(composer(Path(gw.data_dir), doc, tmp_path))
    assert out.admission.count("budget_exceeded") > 20
    cheap = copy.deepcopy(doc)
    cheap["routes"]["split"]["targets"][0]["weight"] = 0  # the dear target never drawn
    assert_same(composer(Path(gw.data_dir), cheap, tmp_path))
    del doc["cache"]
    assert_same(composer(Path(gw.data_dir), doc, tmp_path))


@pytest.mark.parametrize("seed", range(4))
def test_random_candidates_on_small_logs(seed, tmp_path):
    d = tmp_path / "log"
    replay_scale.generate(d, 1500, seed=seed, chunk=500)
    rng = np.random.default_rng(seed)
    doc = live()
    doc["budgets"] = {
        "timezone": str(rng.choice(["UTC", "America/New_York", "Asia/Kolkata"])),
        "limits": [
            {"scope": str(s), "usd": float(rng.uniform(0.001, 0.3)), "window": str(w), "mode": str(m)}
            for s, w, m in zip(
                rng.choice(["team", "user", "key", "global"], 3), rng.choice(["day", "week", "month"], 3),
                rng.choice(["hard", "hard", "soft"], 3), strict=True,
            )
        ],
    }  # fmt: skip
    doc["rate_limits"] = [{"scope": "key", "rpm": int(rng.integers(2, 30))}, {"scope": "user", "tpm": 3000}]
    doc["cache"] = {"exact": {"ttl_s": float(rng.uniform(1, 30)), "max_entries": int(rng.integers(1, 300))}}
    assert_same(composer(d, doc, tmp_path))


def test_what_the_kernel_does_not_fold_falls_back(semantic_log, tmp_path):
    """A semantic setting the kernel does not implement (the learned bound) is declined as a
    whole, by any field not at its default: the Python fold decides."""
    doc = semantic_policy(semantic_log)
    doc["cache"]["semantic"] = {"max_false_hit_rate": 0.05}
    assert run_compiled(composer(semantic_log, doc, tmp_path)) is None
    assert fold_semantic.supported([load_policy(_with_cache(doc, {"semantic": {"threshold": 0.9}})).cache_for("chat")])


def _with_cache(doc: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["cache"] = cache
    return out


# -- the semantic cache -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def semantic_log(semantic_logs: tuple[Path, Path]) -> Path:
    """A log with embeddings and features, its cache fields decided by the live decision core
    (cache/synthetic_log.py); few keys, so semantic groups are large enough to hit and evict.
    Built once per session (tests/semantic_logs.py), only read here."""
    return semantic_logs[0]


def semantic_policy(d: Path) -> dict[str, Any]:
    return yaml.safe_load((d / "policy-live.yaml").read_text())


def _semantic_kinds(out: Folded) -> dict[str | None, int]:
    kinds = [o.kind if o is not None else None for o in out.cache]
    return {k: kinds.count(k) for k in set(kinds)}


def test_the_kernel_folds_the_live_semantic_policy_exactly(semantic_log, tmp_path):
    """Similarities bit for bit (the live store's BLAS product, laid out as its groups are),
    miss reasons (empty, below threshold, rejected by verification), sources, savings."""
    out = assert_same(composer(semantic_log, semantic_policy(semantic_log), tmp_path))
    reasons = {o.reason for o in out.cache if o is not None and o.kind == "miss"}
    assert _semantic_kinds(out)["semantic-hit"] > 100
    assert {"semantic: empty", "semantic: below threshold"} <= reasons
    assert any(r and r.startswith("semantic: rejected: ") for r in reasons), reasons


@pytest.mark.parametrize(
    "semantic, rest",
    [
        ({"threshold": 0.8}, {}),  # more hits than live
        ({"threshold": 0.93, "verify": False}, {}),  # fewer, no verification
        ({"threshold": 0.85, "ttl_s": 20}, {}),  # entries expire
        ({"threshold": 0.85, "max_entries": 150}, {}),  # FIFO eviction, groups compacting
        ({"threshold": 0.85, "max_entries": 40, "ttl_s": 3000}, {"namespace": []}),  # one group per context
        ({"threshold": 0.9}, {"exact": None}),  # semantic only: every repeat is a semantic lookup
    ],
)
def test_semantic_candidates(semantic_log, tmp_path, semantic, rest):
    doc = semantic_policy(semantic_log)
    doc["cache"]["semantic"] = semantic
    for k, v in rest.items():
        if v is None:
            doc["cache"].pop(k, None)
        else:
            doc["cache"][k] = v
    out = assert_same(composer(semantic_log, doc, tmp_path))
    assert _semantic_kinds(out).get("semantic-hit", 0) > 20


def test_semantic_cache_behind_budgets_and_rates(semantic_log, tmp_path):
    """Requests refused by a budget or a rate never reach the cache (no lookup, no store); a
    hit costs nothing and leaves budget for later requests."""
    doc = semantic_policy(semantic_log)
    doc["budgets"] = {"limits": [{"scope": "team", "usd": 0.9, "window": "day"}, {"scope": "key", "usd": 0.6,
                                                                                  "window": "day"}]}  # fmt: skip
    doc["rate_limits"] = [{"scope": "key", "rpm": 500}]
    doc["cache"]["semantic"]["threshold"] = 0.85
    out = assert_same(composer(semantic_log, doc, tmp_path))
    refused = [i for i, a in enumerate(out.admission) if a in ("budget_exceeded", "rate_limited")]
    assert len(refused) > 200 and all(out.cache[i] is None for i in refused), len(refused)
    assert _semantic_kinds(out).get("semantic-hit", 0) > 20, _semantic_kinds(out)


def test_semantic_replay_starting_mid_log(semantic_log, tmp_path):
    """The warm cache (answers stored before ``since``, their vectors read from the log) seeds
    the kernel's semantic groups."""
    first = open_log(str(semantic_log)).execute("SELECT epoch(min(ts)), epoch(max(ts)) FROM requests").fetchone()
    since = datetime.fromtimestamp(float(first[0] + (first[1] - first[0]) / 2), UTC)
    c = composer(semantic_log, semantic_policy(semantic_log), tmp_path, since=since)
    assert c.warm
    out = assert_same(c)
    warm_rids = {r.rid for r, _ in c.warm}
    assert any(o is not None and o.kind == "semantic-hit" and o.source.rid in warm_rids for o in out.cache)


def test_a_candidate_caching_a_new_route_keys_it_from_the_logged_bodies(semantic_log, tmp_path):
    """Rows of a route the live policy did not cache logged no key: both folds key them from
    their logged bodies — the Python fold reading only those rows' bodies from the window, never
    the whole column as a list (``Composer.prepared`` passes the window)."""
    doc = semantic_policy(semantic_log)
    doc["routes"]["summarize"].pop("cache")
    c = composer(semantic_log, doc, tmp_path)
    keyed = [p.key for p, r in zip(c.prepared, c.rows, strict=True) if r.route == "summarize"]
    assert keyed and all(k is not None for k in keyed)
    assert not dict.__contains__(c.window, "request_body")
    out = assert_same(c)
    hits = [o is not None and o.kind == "hit" for o in out.cache]
    assert any(h and r.route == "summarize" for h, r in zip(hits, c.rows, strict=True))


@pytest.mark.parametrize("seed", range(3))
def test_the_kernels_semantic_store_is_the_live_store(seed):
    """Adds, FIFO evictions (groups compacting, emptied groups dropped) and lookups at random:
    the kernel's verdict, similarity bits and reason equal ``SemanticStore`` + ``choose``."""
    rng = np.random.default_rng(seed)
    m, dim, groups, size = 1500, 16, 3, int(rng.integers(40, 200))
    vecs = rng.standard_normal((m, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    group = np.tile(rng.integers(0, groups, m), 2)  # rows m + i: the lookups, of another vector
    assert_store_is_live(rng, vecs, group, groups, size, p_add=0.6)


def test_a_group_past_exact_search_declines():
    """Live, a group of more than EXACT_MAX entries is searched through hnswlib (approximate):
    the kernel stops rather than decide it exactly."""
    m = EXACT_MAX + 1
    facts = {"on": np.ones(m, np.bool_), "store": np.zeros(m, np.int64), "group": np.zeros(m, np.int64),
             "mat": np.zeros(m, np.int64), "vi": np.arange(m), "feat": np.full(m, -1), "ttl": np.full(m, 30.0),
             "thr": np.full(m, 0.3), "verify": np.zeros(m, np.bool_), "max_e": np.full(m, 10 * m)}  # fmt: skip
    sm = fold_semantic.state(facts, m, 1, 1, 4, 8 * m)
    for i in range(m):
        fold_semantic.sem_add(i, float(i), sm)
        assert sm.flag[0] == (fold_semantic.DECLINED if i == EXACT_MAX else 0)


@pytest.mark.parametrize("seed", range(3))
def test_the_kernels_exact_store_is_the_live_store(seed):
    """Puts and gets at whole seconds (answers stored at the very second of a lookup, refreshed
    keys, evictions): the kernel's store answers as ``ExactStore`` does."""
    rng = np.random.default_rng(seed)
    live, ex = ExactStore(), fold_kernel.exact_stores(12, 1, 3000)
    ttl, size = float(rng.integers(2, 8)), int(rng.integers(1, 6))
    for step in range(3000):
        at, k = float(step // 3), int(rng.integers(0, 12))
        if rng.random() < 0.5:
            live.put(str(k), Entry(f"r{step}", at, b"", None, None), size)
            fold_kernel._put(k, 0, at, step, size, ex)
        ts = at + float(rng.integers(-1, 2))
        got, visible = live.get(str(k), ts, ttl), fold_kernel._visible(k, ts, ttl, ex)
        assert visible == (got is not None), step
        assert not visible or f"r{ex.src[k]}" == got.request_id, step


def test_the_kernels_rate_window_is_the_live_window():
    """Counts at fractional seconds, mostly forward, sometimes stepping back (a start state's
    settlements after the window's start): totals after expiry equal ``RateWindow``'s."""
    rng = np.random.default_rng(7)
    live = RateWindow()
    i64 = np.int64
    rw = fold_kernel.RW(
        np.zeros((1, 64), i64), np.zeros((1, 64), i64), np.zeros((1, 64), i64), *(np.zeros(1, i64) for _ in range(5))
    )
    at = 1000.0
    for step in range(5000):
        at += float(rng.exponential(0.8)) if rng.random() < 0.9 else -float(rng.uniform(0, 5))
        n, t = int(rng.integers(0, 2)), int(rng.integers(0, 50))
        live.add(at, n, t)
        assert fold_kernel._add(0, at, n, t, rw)
        live.expire(at + 0.5)
        fold_kernel._expire(0, at + 0.5, rw)
        assert (live.requests, live.tokens) == (rw.requests[0], rw.tokens[0]), step


def test_an_empty_window(synthetic, tmp_path):
    """No request in the window (every column empty): the kernel folds nothing, with the same
    array types as always (an empty list made a float array, which the kernel could not index by)."""
    assert_same(composer(synthetic, tight(), tmp_path, since=datetime(2031, 1, 1, tzinfo=UTC)))


@pytest.fixture(scope="module")
def parity(upstream, tmp_path_factory) -> ParityRun:
    """The all-stages parity traffic (tests/parity_traffic.py): virtual keys with budgets and
    rpm/tpm of their own, key versions, streams, /v1/messages, embeddings, unknown models,
    malformed bodies, upstream faults, a restart two thirds in."""
    run = ParityRun.start(tmp_path_factory.mktemp("parity"), upstream.base_url, 400)
    run.play(request_mix(seed=11, n=400), restart=True)
    assert run.stop() == 0, run.gw.server_log()[-3000:]
    return run


def test_the_all_stages_parity_log(parity, tmp_path):
    doc = yaml.safe_load(Path(parity.gw.policy_path).read_text())
    c = composer(Path(parity.gw.data_dir), doc, tmp_path)
    assert c.history is not None and any(f is not None and f.key_version for f in c.facts)
    out = assert_same(c)
    assert {"budget_exceeded", "rate_limited"} <= set(out.admission)
    for limits in (doc.get("budgets") or {}).get("limits", []):
        limits["usd"] = limits["usd"] / 3  # a candidate that cuts everyone off earlier
    assert_same(composer(Path(parity.gw.data_dir), doc, tmp_path))
