"""The semantic-threshold sweep and the cache decision core over a log written through the real
LogWriter (llmgw_kernel.cache.synthetic_log: the live decision core decided every row).

The compiled sweep (one composed fold records the lookups, a numba loop folds each threshold)
must equal the composed fold run per threshold, and both a full replay; the live policy
replays its own log with 0 differences; replay keeps one float32 matrix of embeddings, never
a vector object per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from llmgw_kernel import load_policy, open_log, replay
from llmgw_kernel.cache.synthetic_log import policy_doc
from llmgw_kernel.replay import _state_before, load_window
from llmgw_kernel.replay.cache_sweep import fold_thresholds, sweep_semantic_threshold
from llmgw_kernel.replay.cache_sweep_inputs import coupled, coupled_lists
from llmgw_kernel.replay.fold_inputs import inputs
from llmgw_kernel.replay.stages import decide

THRESHOLDS = [0.8, 0.86, 0.9, 0.95, 0.98]


@pytest.fixture(scope="module")
def log_dir(semantic_logs: tuple[Path, Path]) -> Path:
    """generate(4000, seed=3, keys=4) (few keys: semantic groups large enough to hit), built once
    per session (tests/semantic_logs.py) and only read here."""
    return semantic_logs[0]


def _composer(policy, data: Path, since=None):
    con = open_log(data)
    pol = load_policy(policy)
    window = load_window(con, since, None)
    history, start, warm = _state_before(pol, con, window, since)
    return decide(pol, window, history, start, warm, fold=False).composer


def _by_rid(sweep):
    """Each threshold's (threshold, kinds, source request ids, saved) as lists."""
    out = []
    for s in sweep.results:
        hits = np.flatnonzero(s.source >= 0)
        rids = [None] * len(s.source)
        for i, rid in zip(hits.tolist(), sweep.rids(s.source[hits]), strict=True):
            rids[i] = rid
        out.append((s.threshold, s.kinds.tolist(), rids, s.saved.tolist()))
    return out


def test_the_live_policy_replays_its_own_semantic_log_exactly(log_dir):
    result = replay(log_dir / "policy-live.yaml", log_dir)
    differs = result.summary["differs_from_log"]
    assert differs["any"] == 0 and differs["cache"] == 0 and differs["routing"] == 0, differs
    cache = result.summary["cache"]
    assert cache["semantic_hits"] > 50 and cache["exact_hits"] > 50
    logged = result.decisions["logged_cache"].value_counts().to_dict()
    assert logged.get("semantic-hit") == cache["semantic_hits"]


def test_compiled_sweep_equals_the_composed_fold_at_every_threshold(log_dir):
    c = _composer(log_dir / "policy-live.yaml", log_dir)
    assert not coupled(inputs(c))  # no budget, no token limit: the compiled sweep applies
    c = _composer(log_dir / "policy-live.yaml", log_dir)
    compiled = _by_rid(fold_thresholds(c, THRESHOLDS, compiled=True))
    for made in ("facts", "prepared", "all_rows", "_cache_rows", "warm"):  # over columns: no object per request
        assert made not in c.__dict__, made
    folded = _by_rid(fold_thresholds(_composer(log_dir / "policy-live.yaml", log_dir), THRESHOLDS, compiled=False))
    assert compiled == folded
    semantic = [kinds.count("semantic-hit") for _, kinds, _, _ in compiled]
    assert semantic == sorted(semantic, reverse=True) and semantic[0] > semantic[-1]  # the threshold matters
    # at the live threshold, the sweep is the live decisions
    live = replay(log_dir / "policy-live.yaml", log_dir).decisions
    _, kinds, sources, _ = compiled[THRESHOLDS.index(0.9)]
    assert kinds == [k if isinstance(k, str) else None for k in live["replay_cache"]]
    assert sources == [s if isinstance(s, str) else None for s in live["replay_cache_source"]]


def test_a_budget_couples_admission_to_the_cache_and_the_sweep_folds_each_threshold(log_dir, tmp_path):
    candidate = tmp_path / "budget.yaml"
    candidate.write_text(yaml.safe_dump(policy_doc(budget_usd=0.05)))
    c = _composer(candidate, log_dir)
    assert coupled(inputs(c))
    table = sweep_semantic_threshold(candidate, log_dir, [0.9], estimate=False)
    full = replay(candidate, log_dir)
    assert full.summary["outcome"]["refused"] > 0  # the budget runs out: refused requests never reach the cache
    row = table.iloc[0]
    for k in ("exact_hits", "semantic_hits", "saved_usd"):
        assert row[k] == pytest.approx(full.summary["cache"][k]), k


def test_replay_rows_share_one_float32_matrix_of_embeddings(log_dir):
    c = _composer(log_dir / "policy-live.yaml", log_dir)
    with_vectors = [r for r in c.rows if r.vi >= 0]
    assert len(with_vectors) > 1000
    matrix = with_vectors[0].matrix
    assert matrix.dtype == np.float32 and matrix.ndim == 2
    assert all(r.matrix is matrix for r in with_vectors)  # no per-row vector object is kept
    assert not hasattr(with_vectors[0], "__dict__")
    v = with_vectors[0].vector
    assert v is not None and np.shares_memory(v, matrix) and abs(float(v @ v) - 1.0) < 1e-5


@pytest.mark.parametrize("budget", [None, 0.05])
def test_the_sweep_equals_the_compiled_replay_at_each_threshold(log_dir, tmp_path, budget):
    """Each threshold of the sweep is what the compiled fold (the one large windows take)
    decides for the candidate at that threshold — without and with a budget in front of the cache.
    (One target per route: a weighted draw hashes the policy version, which the threshold changes.)"""
    pytest.importorskip("numba")
    from llmgw_kernel.replay.cache_sweep import with_semantic_threshold
    from llmgw_kernel.replay.fold_kernel import run_compiled

    doc = policy_doc(budget_usd=budget)
    doc["routes"]["chat"]["targets"] = doc["routes"]["chat"]["targets"][:1]
    source = tmp_path / "candidate.yaml"
    source.write_text(yaml.safe_dump(doc))
    swept = _by_rid(fold_thresholds(_composer(source, log_dir), [0.86, 0.95]))
    for t, kinds, sources, saved in swept:
        c = decide(with_semantic_threshold(source, t), load_window(open_log(log_dir)), fold=False).composer
        got = run_compiled(c)
        assert got is not None
        assert got.cache_kind == kinds, t
        assert got.cache_source_rid == sources and got.saved == saved, t


def test_a_window_starting_mid_log_sweeps_with_the_warm_cache(log_dir):
    """From ``since``, answers cached before it (warm rows, whose vectors are another matrix than
    the window's) answer the window's lookups: the compiled sweep equals the composed fold at every
    threshold, and at the live threshold the replay from ``since``."""
    ts = open_log(log_dir).execute("SELECT min(ts), max(ts) FROM requests").fetchall()[0]
    since = ts[0] + (ts[1] - ts[0]) / 2
    policy = log_dir / "policy-live.yaml"
    c = _composer(policy, log_dir, since)
    assert c.warm_window is not None and len(c.warm_window) > 100
    compiled = _by_rid(fold_thresholds(c, THRESHOLDS, compiled=True))
    assert compiled == _by_rid(fold_thresholds(_composer(policy, log_dir, since), THRESHOLDS, compiled=False))
    live = replay(policy, log_dir, since=since).decisions
    _, kinds, sources, _ = compiled[THRESHOLDS.index(0.9)]
    assert kinds == [k if isinstance(k, str) else None for k in live["replay_cache"]]
    assert sources == [s if isinstance(s, str) else None for s in live["replay_cache_source"]]
    n = len(kinds)
    from_warm = [s for s in sources if s is not None and s not in set(live.index)]
    assert from_warm and len(from_warm) < n  # some hits are served answers cached before the window


SWEPT = [0.8, 0.9, 0.95]


def _limited(tmp_path: Path) -> Path:
    """A candidate with a daily team budget, a per-key rpm and a per-team tpm limit, each of which
    refuses requests of the module's log (one target per route: the routing does not depend on
    the policy version, which the threshold changes)."""
    doc = policy_doc()
    doc["budgets"] = {"limits": [{"scope": "team", "name": "research", "usd": 0.1, "window": "day"}]}
    doc["routes"]["chat"]["targets"] = doc["routes"]["chat"]["targets"][:1]
    doc["rate_limits"] = [{"scope": "key", "rpm": 600}, {"scope": "team", "tpm": 500_000}]
    source = tmp_path / "limited.yaml"
    source.write_text(yaml.safe_dump(doc))
    return source


@pytest.mark.parametrize("scored_by_store", [False, True])
def test_a_sweep_with_budgets_and_rate_limits_is_the_replay_of_each_thresholds_candidate(
    log_dir, tmp_path, monkeypatch, scored_by_store
):
    """Limits couple the stages (a hit spends nothing and counts no tokens, so who is admitted, and
    so what reaches the cache, depends on the threshold): each threshold is the compiled fold of
    the whole replay, over inputs made once, its semantic lookups searching lists found once. Every
    row's cache kind, source and saved cost equals ``replay()`` of that threshold's candidate —
    with the lists deciding what they can (``scored_by_store`` False), and with every lookup that
    has a candidate scored by the store instead (an error bound so wide that nothing is certain)."""
    pytest.importorskip("numba")
    from llmgw_kernel.replay import cache_sweep, fold_semantic
    from llmgw_kernel.replay.cache_sweep import with_semantic_threshold

    if scored_by_store:
        monkeypatch.setattr(fold_semantic, "dot_error_bound", lambda dim, norm: 0.5)
    made = []
    monkeypatch.setattr(cache_sweep, "coupled_lists", lambda *a: made.append(coupled_lists(*a)) or made[-1])
    source = _limited(tmp_path)
    c = _composer(source, log_dir)
    swept = _by_rid(fold_thresholds(c, SWEPT))
    for name in ("facts", "prepared", "all_rows", "_cache_rows", "warm"):  # over columns: no object per request
        assert name not in c.__dict__, name
    decided, scored = made[0].tally
    assert decided > 0 and scored > 0, made[0].tally  # near ties and near-threshold similarities: both ways
    refused, why = [], set()
    for t, kinds, sources, saved in swept:
        full = replay(with_semantic_threshold(source, t), log_dir)
        live = full.decisions
        assert kinds == [k if isinstance(k, str) else None for k in live["replay_cache"]], t
        assert sources == [s if isinstance(s, str) else None for s in live["replay_cache_source"]], t
        assert np.array_equal(np.array(saved, float), live["replay_saved_usd"].to_numpy(float), equal_nan=True), t
        refused.append(full.summary["limits"]["refused"])
        why |= {r.split(" limit of ")[-1].split(" ", 1)[-1] for r in live["replay_admission_reason"].dropna()}
    assert {"requests per minute reached", "tokens per minute reached"} <= why, why
    assert full.summary["limits"]["budget_exceeded"] > 0
    assert len(set(refused)) == len(SWEPT), refused  # the threshold moves who is admitted
