"""The cache's decision functions, stores and policy section, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from llmgw_kernel import PolicyError, load_policy
from llmgw_kernel.cache import semantic as semantic_mod
from llmgw_kernel.cache.exact import Entry, ExactStore
from llmgw_kernel.cache.semantic import SemanticStore
from llmgw_kernel.decisions import cache as d
from llmgw_kernel.policy.model import DEFAULT_SEMANTIC_THRESHOLD

BODY = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is DNS?"}]}


def entry(rid: str, at: float) -> Entry:
    return Entry(rid, at, b"{}", "p/m", None)


def test_exact_key_covers_what_changes_the_answer_only():
    k = d.exact_key("r", BODY)
    assert d.exact_key("r", {**BODY, "stream": True, "stream_options": {"include_usage": True}}) == k
    assert d.exact_key("r", {**BODY, "user": "ann", "metadata": {"team": "x"}}) == k
    for change in ({"temperature": 0.5}, {"max_tokens": 10}, {"seed": 1}, {"tools": []}, {"n": 2},
                   {"response_format": {"type": "json_object"}}):  # fmt: skip
        assert d.exact_key("r", {**BODY, **change}) != k, change
    assert d.exact_key("other-route", BODY) != k


def test_namespaces_only_ever_narrow():
    s = load_policy({"providers": {"d": {"kind": "demo"}}, "cache": {"exact": {}},
                     "routes": {"r": {"targets": [{"provider": "d", "model": "e"}]}}}).cache  # fmt: skip
    base = d.namespace(s, "r", "sha256:a", "red", None)
    assert d.namespace(s, "r", "sha256:b", "red", None) != base
    assert d.namespace(s, "r", "sha256:a", "blue", None) != base
    with_header = d.namespace(s, "r", "sha256:a", "red", "mine")
    assert with_header != base and with_header.startswith(base)
    # a header cannot imitate another tenant's parts
    assert d.namespace(s, "r", "sha256:a", "red", "x\x1fkey=sha256:b") != d.namespace(s, "r", "sha256:b", "red", "x")
    shared = s.model_copy(update={"namespace": []})
    assert d.namespace(shared, "r", "sha256:a", "red", None) == d.namespace(shared, "r", "sha256:b", "blue", None)


def test_semantic_text_and_context():
    assert d.semantic_text(BODY) == "What is DNS?"
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    assert d.semantic_text(parts) == "a\nb"
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert d.semantic_text(image) is None
    assert d.semantic_text({"messages": [*BODY["messages"], {"role": "assistant", "content": "x"}]}) is None
    para = {"messages": [BODY["messages"][0], {"role": "user", "content": "Explain DNS"}]}
    assert d.semantic_context("r", para) == d.semantic_context("r", BODY)
    other_system = {"messages": [{"role": "system", "content": "Be verbose."}, BODY["messages"][1]]}
    assert d.semantic_context("r", other_system) != d.semantic_context("r", BODY)
    assert d.semantic_context("r", {**BODY, "temperature": 1}) != d.semantic_context("r", BODY)


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", "word order"),
        ("Convert miles per hour to km per hour", "Convert km per hour to miles per hour", "word order"),
        ("Can I take ibuprofen with alcohol?", "Can I take ibuprofen without alcohol?", "negation"),
        ("Why is the sky blue?", "Why isn't the sky blue?", "negation"),
        ("Chuyển 5 km sang dặm", "Chuyển 8 km sang dặm", "numbers"),
        ("What is two plus two?", "What is 2 plus 3?", "numbers"),
        ("What is the population of Vienna?", "What is the population of Paris?", "entities"),
        ("Does the iPhone 15 have USB-C?", "Does the iPhone have USB-C?", "numbers"),
    ],
)
def test_verification_rejects_known_failure_modes(a, b, why):
    assert d.verify(d.features(a), d.features(b)) == why
    assert d.verify(d.features(b), d.features(a)) == why


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I convert Celsius to Fahrenheit?", "How can I convert celsius into fahrenheit?"),
        ("What is the capital of France?", "Which city is the capital of France?"),
        ("How many days are in a leap year?", "How many days does a leap year have?"),
        ("Pokémon Emerald cheat codes", "Pokemon Emerald cheat codes"),
        ("Best way to learn Python?", "How should I learn python quickly"),
    ],
)
def test_verification_keeps_paraphrases(a, b):
    assert d.verify(d.features(a), d.features(b)) is None


def test_features_roundtrip_through_json():
    f = d.features("Is 7 a prime number, not 9? Ask Alice in Paris to go from A to B.")
    assert d.Features.from_json(f.to_json()) == f


def test_choose_takes_the_best_candidate_that_passes():
    q = d.features("How do I convert Celsius to Fahrenheit?")
    swapped = d.features("How do I convert Fahrenheit to Celsius?")
    para = d.features("How can I convert Celsius into Fahrenheit?")
    cands = [d.Candidate(0.99, 1, swapped), d.Candidate(0.97, 2, para), d.Candidate(0.5, 3, para)]
    assert d.choose(0.95, True, q, cands) == d.SemanticVerdict(2, 0.97, "semantic-hit")
    assert d.choose(0.95, False, q, cands).entry == 1
    assert d.choose(0.98, True, q, cands) == d.SemanticVerdict(None, 0.99, "rejected: word order")
    assert d.choose(0.999, True, q, cands).reason == "below threshold"
    assert d.choose(0.9, True, q, []).reason == "empty"


def test_exact_store_visibility_ttl_and_fifo_eviction():
    s = ExactStore()
    s.put("a", entry("1", 100.0), max_entries=2)
    assert s.get("a", 100.0, 10) is None  # stored at the same instant: not before the request
    assert s.get("a", 109.9, 10).request_id == "1"
    assert s.get("a", 110.0, 10) is None  # expired
    s.put("b", entry("2", 101.0), 2)
    s.put("a", entry("3", 102.0), 2)  # refresh moves "a" behind "b"
    s.put("c", entry("4", 103.0), 2)  # evicts the oldest: "b"
    assert s.get("b", 104, 60) is None and s.get("a", 104, 60).request_id == "3" and len(s) == 2


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_semantic_store_isolates_groups_honours_ttl_and_evicts_oldest_first():
    s = SemanticStore(dim=3)
    s.add("t1", "c", unit([1, 0, 0]), entry("a", 10.0), None, max_entries=3)
    s.add("t2", "c", unit([1, 0, 0]), entry("b", 11.0), None, 3)
    s.add("t1", "other", unit([1, 0, 0]), entry("c", 12.0), None, 3)
    found = s.search("t1", "c", unit([1, 0.1, 0]), 20.0, 60, 3)
    assert [s.get(c.entry).entry.request_id for c in found] == ["a"]
    assert s.search("t1", "c", unit([1, 0, 0]), 10.0, 60, 3) == []  # not stored before the request
    assert s.search("t1", "c", unit([1, 0, 0]), 70.0, 60, 3) == []  # expired
    s.add("t1", "c", unit([0, 1, 0]), entry("d", 13.0), None, 3)  # fourth entry evicts "a"
    assert [s.get(c.entry).entry.request_id for c in s.search("t1", "c", unit([1, 0, 0]), 20.0, 60, 3)] == ["d"]
    assert len(s) == 3


def test_the_hnswlib_path_finds_what_exact_search_finds(monkeypatch):
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((600, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    exact, approx = SemanticStore(32), SemanticStore(32)
    for i, v in enumerate(vecs):
        exact.add("n", "c", v, entry(str(i), float(i)), None, 10_000)
    monkeypatch.setattr(semantic_mod, "EXACT_MAX", 100)
    for i, v in enumerate(vecs):
        approx.add("n", "c", v, entry(str(i), float(i)), None, 500)  # also evicts the first 100
    assert approx._groups[("n", "c")].index is not None
    agree = 0
    for q in vecs[300:400] + 0.05 * rng.standard_normal((100, 32)).astype(np.float32):
        q = q / np.linalg.norm(q)
        e = [c for c in exact.search("n", "c", q, 1e6, 1e9, 3) if c.entry >= 100]
        a = approx.search("n", "c", q, 1e6, 1e9, 3)
        agree += [c.entry for c in a][:1] == [c.entry for c in e][:1]
        if a and e and a[0].entry == e[0].entry:
            assert a[0].similarity == pytest.approx(e[0].similarity, abs=1e-6)  # rescored exactly
    assert agree >= 98


def test_policy_cache_section_and_route_overrides():
    doc = {
        "providers": {"d": {"kind": "demo"}},
        "cache": {"exact": {"ttl_s": 60}, "semantic": {}},
        "routes": {
            "a": {"targets": [{"provider": "d", "model": "x"}]},
            "b": {"targets": [{"provider": "d", "model": "x"}], "cache": {"semantic": {"threshold": 0.97}}},
            "c": {"targets": [{"provider": "d", "model": "x"}], "cache": False},
            "e": {"targets": [{"provider": "d", "model": "x"}], "cache": {"exact": None}},
        },
    }
    p = load_policy(doc)
    assert p.cache_for("a").semantic.threshold == DEFAULT_SEMANTIC_THRESHOLD
    assert p.cache_for("b").semantic.threshold == 0.97 and p.cache_for("b").exact.ttl_s == 60
    assert p.cache_for("c") is None
    assert p.cache_for("e").exact is None and p.cache_for("e").semantic is not None
    assert load_policy({**doc, "cache": None}).cache_for("a") is None  # no section, nothing cached
    with pytest.raises(PolicyError, match=r"cache\.semantic\.threshold"):
        load_policy({**doc, "cache": {"semantic": {"threshold": 1.5}}})
    with pytest.raises(PolicyError, match=r"routes\.a\.cache"):
        load_policy({**doc, "routes": {"a": {"targets": [{"provider": "d", "model": "x"}], "cache": {"exakt": {}}}}})


def test_purge_deletes_expired_entries_but_keeps_the_eviction_order():
    s, e = SemanticStore(dim=3), ExactStore()
    for i in range(4):
        s.add("n", "c", unit([1, i, 0]), entry(str(i), 10.0 + i), None, max_entries=4)
        e.put(str(i), entry(str(i), 10.0 + i), max_entries=4)
    assert s.purge(before=12.5, ttl_s=1) == 2 and e.purge(before=12.5, ttl_s=1) == 2  # stored at 10, 11
    assert len(s) == 2 and [x.entry.request_id for _, x in s.entries()] == ["2", "3"]
    assert e.get("0", 10.5, 100) is None and e.get("2", 13.0, 100).request_id == "2"
    assert s.purge(before=12.5, ttl_s=1) == 0  # idempotent
    # the purged entries still count for eviction: the fifth insertion evicts "0" (a tombstone), not "2"
    s.add("n", "c", unit([0, 0, 1]), entry("4", 20.0), None, max_entries=4)
    e.put("4", entry("4", 20.0), max_entries=4)
    found = s.search("n", "c", unit([1, 2, 0]), 21.0, 100, 3)
    assert "2" in [s.get(c.entry).entry.request_id for c in found]
    assert e.get("2", 21.0, 100) is not None and len(e) == 4
    # a replayed store (never purged) makes the same eviction decisions
    r = SemanticStore(dim=3)
    for i in range(4):
        r.add("n", "c", unit([1, i, 0]), entry(str(i), 10.0 + i), None, max_entries=4)
    r.add("n", "c", unit([0, 0, 1]), entry("4", 20.0), None, max_entries=4)
    assert [x.entry.request_id for _, x in r.entries()] == ["1", "2", "3", "4"]
