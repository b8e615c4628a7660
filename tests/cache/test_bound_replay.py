"""Replaying a *candidate* false-hit bound starts from the verified outcomes the live gateway
journaled (cache/bound_replay.py): a real `llmgw serve` learns from compared misses and serves a
paraphrase; then, over its log, a candidate bound with the same evidence needs serves it too,
each outcome only from the time it became known (no look-ahead), and without the journal it
cannot; the live policy still replays with 0 differences."""

from __future__ import annotations

import copy
import shutil
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from conftest import Gateway, wait_for_rows, wait_model_ready
from test_cache_bound_live import PARAPHRASES, PROBE, ask, bound_policy, learn

from llmgw_kernel import load_policy, open_log, replay
from llmgw_kernel.cache.bound_replay import attach_journal
from llmgw_kernel.cache.core import Caches
from llmgw_kernel.cache.outcomes import OUTCOMES_FILE, compact, folded_through, journal_paths
from llmgw_kernel.replay.window import load_window


def candidate(live: dict, delta: float) -> dict:
    """The live policy with another bound on the ``capped`` route (a new policy version)."""
    out = copy.deepcopy(live)
    out["routes"]["capped"]["cache"]["semantic"]["max_false_hit_rate"] = delta
    return out


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    """A stopped gateway's data directory after six paraphrases (five compared misses: the
    evidence a 50% bound needs) and a probe it served as a semantic hit."""
    policy = bound_policy(upstream.base_url)
    gw = Gateway(tmp_path_factory.mktemp("bound-replay"), policy)
    try:
        wait_model_ready(gw)
        ns = f"t-{uuid.uuid4().hex}"
        ids = learn(gw, "capped", ns)
        h, _, _ = ask(gw, PROBE, "capped", ns)
        assert h["x-llmgw-cache"] == "semantic-hit"
        ids.append(h["x-llmgw-request-id"])
        rows = wait_for_rows(gw, f"cache_namespace LIKE '%{ns}%'", n=len(PARAPHRASES[:6]) + 1)
    finally:
        gw.terminate()
    return gw, policy, ids, min(r["ts"] for r in rows)


def replayed(policy, gw: Gateway, ids: list[str], since) -> list[str]:
    result = replay(policy, gw.data_dir, since=since)
    return result.decisions.loc[ids]["replay_cache"].tolist()


def test_a_candidate_bound_learns_the_journaled_outcomes_as_they_became_known(served):
    gw, live, ids, since = served
    learning = ["miss"] * 6
    # the live policy: the logged thresholds, 0 differences
    result = replay(gw.policy_path, gw.data_dir, since=since)
    mine = result.decisions.loc[ids]
    assert mine["logged_cache"].tolist() == [*learning, "semantic-hit"]
    assert int(mine["differs"].sum()) == 0
    # a candidate whose bound needs the same evidence (5 outcomes at 49% as at 50%) serves the
    # probe; the paraphrases stay misses: each was decided with the outcomes known before it
    # arrived (all attached up front, the 2nd paraphrase would already be a hit)
    assert replayed(candidate(live, 0.49), gw, ids, since) == [*learning, "semantic-hit"]
    # a stricter candidate (59 outcomes needed) cannot, whatever it is given
    assert replayed(candidate(live, 0.05), gw, ids, since) == [*learning, "miss"]
    # without the journal, the candidate has no evidence: only repeats would be served
    journal = gw.data_dir / OUTCOMES_FILE
    aside = journal.with_suffix(".aside")
    journal.rename(aside)
    try:
        assert replayed(candidate(live, 0.49), gw, ids, since) == [*learning, "miss"]
        # the same outcomes stamped as known before the window: the paraphrases become hits (so
        # the misses above are the time order at work, not a lack of evidence)
        known_early = [orjson.loads(line) | {"known_at": 0.0} for line in aside.read_bytes().splitlines()]
        journal.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in known_early))
        early = replayed(candidate(live, 0.49), gw, ids, since)
        assert early[0] == "miss" and set(early[1:]) == {"semantic-hit"}, early
    finally:
        aside.replace(journal)


def test_attach_journal_only_for_a_policy_under_the_bound(served):
    gw, live, _, since = served
    caches = Caches()
    assert attach_journal(caches, load_policy(candidate(live, 0.49)), None, gw.data_dir) >= 5
    without = copy.deepcopy(live)
    for r in without["routes"].values():
        r.pop("cache", None)
    without.pop("cache")
    assert attach_journal(Caches(), load_policy(without), None, gw.data_dir) == 0
    assert attach_journal(Caches(), load_policy(live), {"request_id": []}) == 0  # a window of columns: no journal
    # a window read from the log: its own journal, the outcomes known before its last arrival only
    con = open_log(gw.data_dir)
    try:
        first = load_window(con, until=datetime.fromtimestamp(since.timestamp() + 1e-3, UTC))
        assert len(first) == 1 and attach_journal(Caches(), load_policy(candidate(live, 0.49)), first) == 0
        whole = load_window(con)
        assert attach_journal(Caches(), load_policy(candidate(live, 0.49)), whole) >= 5
    finally:
        con.close()


def test_a_compacted_journal_replays_exactly_after_its_folded_outcomes_and_says_what_it_cannot(served):
    """Fold all but the last outcome: the window's requests up to the last folded one are named
    in the cache summary's warnings; the probe (after it) is served as with the whole journal,
    and a window starting after it replays with no warning."""
    gw, live, ids, since = served
    journal = gw.data_dir / OUTCOMES_FILE
    aside = journal.with_suffix(".aside")
    aside.write_bytes(journal.read_bytes())
    try:
        whole = replay(candidate(live, 0.49), gw.data_dir, since=since)
        assert "warnings" not in whole.summary["cache"]
        compact(journal, keep=1)
        through = folded_through(journal)
        assert through is not None
        result = replay(candidate(live, 0.49), gw.data_dir, since=since)
        assert result.decisions.loc[ids]["replay_cache"].tolist() == ["miss"] * 6 + ["semantic-hit"]
        arrived = [r["ts"].timestamp() for r in wait_for_rows(gw, f"request_id IN {tuple(ids)}", n=len(ids))]
        early = sum(t <= through for t in arrived)
        assert 0 < early < len(ids)
        (warning,) = result.summary["cache"]["warnings"]
        assert "compacted" in warning and f" {early} request(s)" in warning
        # a window that starts after the folded outcomes: exact, nothing to warn about
        late = datetime.fromtimestamp(max(arrived), UTC)
        after = replay(candidate(live, 0.49), gw.data_dir, since=late)
        assert "warnings" not in after.summary["cache"]
        assert after.decisions.loc[ids[-1]]["replay_cache"] == whole.decisions.loc[ids[-1]]["replay_cache"]
    finally:
        aside.replace(journal)


def test_replay_folds_every_replicas_journal(served):
    """Replicas sharing a data directory journal their outcomes apart
    (``replicas/<id>/cache-outcomes.jsonl``). The same outcomes split between two replicas'
    journals, the directory's own gone: the candidate decides exactly as with one journal (it
    had no evidence before: only the directory's journal was read); a compacted replica journal
    names the requests it cannot replay exactly."""
    gw, live, ids, since = served
    journal = gw.data_dir / OUTCOMES_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 5
    whole = replayed(candidate(live, 0.49), gw, ids, since)
    assert whole == ["miss"] * 6 + ["semantic-hit"]
    a, b = (gw.data_dir / "replicas" / r for r in ("gw-0", "gw-1"))
    aside = journal.with_suffix(".aside")
    journal.rename(aside)
    try:
        for home, mine in ((a, lines[0::2]), (b, lines[1::2])):  # interleaved: the time order is the replay's
            home.mkdir(parents=True)
            (home / OUTCOMES_FILE).write_bytes(b"".join(mine))
        assert journal_paths(gw.data_dir) == [a / OUTCOMES_FILE, b / OUTCOMES_FILE]
        assert replayed(candidate(live, 0.49), gw, ids, since) == whole
        assert attach_journal(Caches(), load_policy(candidate(live, 0.49)), None, gw.data_dir) == len(lines)
        # one replica's journal compacted (all but its last outcome folded): its warning is the replay's
        compact(b / OUTCOMES_FILE, keep=1)
        through = folded_through(b / OUTCOMES_FILE)
        assert through is not None
        result = replay(candidate(live, 0.49), gw.data_dir, since=since)
        assert result.decisions.loc[ids]["replay_cache"].tolist() == whole
        arrived = [r["ts"].timestamp() for r in wait_for_rows(gw, f"request_id IN {tuple(ids)}", n=len(ids))]
        (warning,) = result.summary["cache"]["warnings"]
        assert f" {sum(t <= through for t in arrived)} request(s)" in warning, warning
    finally:
        shutil.rmtree(gw.data_dir / "replicas", ignore_errors=True)
        aside.replace(journal)
