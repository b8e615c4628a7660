"""Replaying the live policy under ``max_false_hit_rate`` applies the entry floors the live
lookup saw (cache/core.Caches._bounded): those of the outcomes known before the logged lookup
(``cache_lookup_ts``), learned from the attached journal — including an outcome known between
the request's arrival and its lookup — and only looked at, never learned early, for the rows
that decide with the learned threshold."""

from __future__ import annotations

import numpy as np
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.cache.bound import Folded, Outcome, Totals
from llmgw_kernel.cache.core import Caches, Query, semantic_model
from llmgw_kernel.cache.exact import Entry


@pytest.fixture
def settings():
    p = load_policy(
        {
            "providers": {"d": {"kind": "demo"}},
            "cache": {"semantic": {"max_false_hit_rate": 0.05, "verify": False}},
            "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
        }
    )
    return p.cache_for("m")


def _query(settings, vector: list[float], key: str) -> Query:
    q = Query(
        settings, "m", "ns", key, True, "ctx", np.array(vector, np.float32), None, semantic_model(settings.semantic)
    )
    return q


def _caches(settings, outcomes: list[Outcome]) -> Caches:
    caches = Caches()
    caches.store(_query(settings, [1.0, 0.0], "k-a"), Entry("req_a", 10.0, b"{}", "d/echo", None))
    caches.attach_outcomes(outcomes)
    return caches


def _replayed(settings, caches: Caches, looked_up: float | None, threshold: float = 0.9) -> Query:
    q = _query(settings, [0.96, 0.28], "k-q")  # similarity 0.96 to req_a
    q.threshold, q.looked_up = threshold, looked_up
    return q


def _wrong(known_at: float, similarity: float = 0.97) -> Outcome:
    return Outcome(known_at, "m", semantic_model(None), "req_a", "req_b", similarity, False, "shadow")


def test_an_outcome_known_between_arrival_and_lookup_floors_the_entry(settings) -> None:
    caches = _caches(settings, [_wrong(20.5)])  # req_a serves only from 0.98 on, known at 20.5
    found = caches.lookup(_replayed(settings, caches, looked_up=21.0), 20.0)
    assert found.kind == "miss" and found.threshold == pytest.approx(0.98), found
    # not learned: a later row deciding with the learned threshold has not seen it before 20.5
    assert caches.bound("m", semantic_model(None)).floor("req_a") == 0.0


def test_an_outcome_known_after_the_lookup_does_not_floor_it(settings) -> None:
    caches = _caches(settings, [_wrong(21.5)])
    found = caches.lookup(_replayed(settings, caches, looked_up=21.0), 20.0)
    assert found.kind == "semantic-hit" and found.entry.request_id == "req_a", found


def test_a_floor_learned_before_arrival_applies_to_the_live_decision(settings) -> None:
    caches = _caches(settings, [_wrong(15.0)])
    assert caches.lookup(_replayed(settings, caches, looked_up=None), 20.0).kind == "miss"
    # the region's own floors of another region do not apply
    other = _caches(settings, [_wrong(15.0)._replace(route="other")])
    assert other.lookup(_replayed(settings, other, looked_up=21.0), 20.0).kind == "semantic-hit"


def test_a_folded_journal_line_floors_the_entry_too(settings) -> None:
    folded = Folded.of(20.5, "m", semantic_model(None), Totals((), 0, 0, (("req_a", 0.98),)))
    caches = _caches(settings, [folded])
    assert caches.lookup(_replayed(settings, caches, looked_up=21.0), 20.0).kind == "miss"
