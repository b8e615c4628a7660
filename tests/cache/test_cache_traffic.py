"""llmgw_kernel.cache_traffic: the traffic plan and the oracle as pure functions, then one small
end-to-end run through a real server (oracle upstream, exact + semantic cache at 0.9),
checked against the log's ground truth (metadata.intent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from llmgw_kernel import open_log
from llmgw_kernel.cache_traffic import CacheTrafficReport, make_cache_log, oracle_answer, plan_traffic
from llmgw_kernel.cache_traffic_intents import BY_ID, INTENTS, TRAPS
from llmgw_kernel.traffic_profile import TEAMS as PROFILE_TEAMS

#: hard-negative traps the semantic cache's verification claims to catch (decisions/cache.py
#: verify: numbers, negation, entities, word order); "word" traps are left to the threshold
VERIFIED_TRAPS = {"order", "negation", "number", "entity"}


def _trap(a: str, b: str) -> str | None:
    """The trap that links two intents (one is the other's hard negative), else None."""
    ia, ib = BY_ID[a], BY_ID[b]
    if ia.negative_of == b:
        return ia.trap
    if ib.negative_of == a:
        return ib.trap
    return None


# -- pure parts --------------------------------------------------------------------------------


def test_intents_are_well_formed() -> None:
    prompts = [p for it in INTENTS for p in it.prompts]
    assert len(prompts) == len(set(prompts)), "a prompt belongs to two intents"
    assert 40 <= len(INTENTS) <= 70
    assert all(2 <= len(it.prompts) <= 4 for it in INTENTS)
    assert {it.trap for it in INTENTS if it.negative_of} == set(TRAPS)
    for it in INTENTS:
        if it.negative_of:
            assert it.negative_of in BY_ID and it.trap in TRAPS
            assert it.answer != BY_ID[it.negative_of].answer


def test_plan_is_deterministic_and_covers_every_kind() -> None:
    plan = plan_traffic(300, seed=3)
    assert plan == plan_traffic(300, seed=3)
    assert plan != plan_traffic(300, seed=4)
    assert all(r.prompt in BY_ID[r.intent].prompts for r in plan)
    kinds = Counter(r.kind for r in plan)
    assert set(kinds) == {"first", "repeat", "paraphrase", "negative"}
    assert {r.trap for r in plan if r.kind == "negative"} <= set(TRAPS)
    assert 0 < sum(r.stream for r in plan) < 300
    assert {r.team for r in plan} == {t.name for t in PROFILE_TEAMS}  # the traffic profile's teams


def test_oracle_answers_by_intent_with_small_variation() -> None:
    for it in INTENTS:
        answers = [oracle_answer(p) for p in it.prompts]
        restored = [text.replace("Roughly", "About").replace("roughly", "about") for _, text in answers]
        assert all(intent == it.id for intent, _ in answers) and all(it.answer in t for t in restored)
        assert oracle_answer(it.prompts[0]) == answers[0]  # same prompt, same words
    varied = [it for it in INTENTS if len({oracle_answer(p)[1] for p in it.prompts}) > 1]
    assert len(varied) > len(INTENTS) // 2
    assert oracle_answer("something else entirely")[0] == "unknown"


# -- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[CacheTrafficReport, list[dict]]:
    report = make_cache_log(tmp_path_factory.mktemp("cache-traffic") / "data", n=80, seed=0, probe_share=0.3)
    con = open_log(report.data_dir)
    rel = con.sql("""
        SELECT r.request_id, r.cache, r.status, r.stream, r.cache_similarity, r.saved_usd, r.cost_usd,
               r.metadata->>'intent' AS intent, r.metadata->>'team' AS team, r.metadata->>'kind' AS kind,
               r.metadata->>'trap' AS trap, s.metadata->>'intent' AS source_intent
        FROM requests r LEFT JOIN requests s ON s.request_id = r.cache_source
        ORDER BY r.ts
    """)
    rows = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    con.close()
    return report, rows


def test_every_request_is_served_and_logged_with_its_labels(run) -> None:
    report, rows = run
    assert report.ok == report.sent == 80 and report.errors == 0
    assert len(rows) == 80
    assert all(r["status"] == 200 and r["intent"] in BY_ID and r["team"] for r in rows)
    assert Counter(r["cache"] for r in rows) == Counter(report.served)
    assert report.upstream_calls == report.served.get("miss", 0)
    assert any(r["stream"] for r in rows)
    assert Path(report.policy).exists()


def test_exact_and_semantic_hits_happen_and_save_money(run) -> None:
    _, rows = run
    exact = [r for r in rows if r["cache"] == "hit"]
    semantic = [r for r in rows if r["cache"] == "semantic-hit"]
    assert len(exact) >= 5 and len(semantic) >= 3
    assert all(r["source_intent"] == r["intent"] for r in exact)
    assert all(r["cache_similarity"] >= 0.9 for r in semantic)
    assert all(r["saved_usd"] > 0 and r["cost_usd"] == 0 for r in exact + semantic)
    assert all(r["cost_usd"] > 0 for r in rows if r["cache"] == "miss")


def test_hard_negatives_never_get_another_intents_answer(run) -> None:
    """At the default settings (threshold 0.9, verification on), a hit never serves the answer of
    another intent whose difference verification is meant to catch (order, negation, number,
    entity). Only 'word' traps (ascending/descending, soft/hard) may slip through: nothing but
    the threshold separates them."""
    _, rows = run
    probes = [r for r in rows if r["kind"] == "negative"]
    assert {r["trap"] for r in probes} & VERIFIED_TRAPS, "the run probed no verified trap"
    wrong = [r for r in rows if r["cache"] in ("hit", "semantic-hit") and r["source_intent"] != r["intent"]]
    caught_by_verification = [
        (r["intent"], r["source_intent"], round(r["cache_similarity"], 3))
        for r in wrong
        if _trap(r["intent"], r["source_intent"]) != "word"
    ]
    assert caught_by_verification == []


def test_unit_conversions_read_the_other_way_are_refused() -> None:
    """MiniLM scores these pairs 0.95-0.99; a development run once served km-in-miles' answer to
    miles-in-km at threshold 0.9, before "in" counted as a directional word."""
    from llmgw_kernel.decisions.cache import features, verify

    assert verify(features("What is 10 miles in kilometers?"), features("What is 10 kilometers in miles?"))
    assert verify(features("How far is 10 miles in kilometers?"), features("What is 10 kilometers in miles?"))
