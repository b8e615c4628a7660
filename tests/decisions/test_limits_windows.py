"""Rate windows and the size of the admission state (decisions/limits.py): a minute of 1 s
buckets with running totals, so a tpm check costs the same at any traffic, and memory per
window and subject is bounded whatever limits are set; idle subjects and past budget windows
are dropped. Simulated clock, the real `Limits.admit` / `settle`."""

from __future__ import annotations

import tracemalloc
from collections import deque
from datetime import UTC, datetime

import pytest

from llmgw_kernel.decisions.limits import Budget, Limits, Rate, Subject
from llmgw_kernel.policy.model import BudgetLimit, RateLimit

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()


def _rate(rpm: int | None = None, tpm: int | None = None, who: str = "k1") -> list[Rate]:
    return [Rate(RateLimit(scope="key", name=who, rpm=rpm, tpm=tpm), who)]


def _traffic(lim: Limits, rates: list[Rate], per_s: int, seconds: int, start: float = T0, who: str = "k1") -> int:
    """``per_s`` requests a second for ``seconds``, each settled 0.5 s after admission at 30
    tokens; events in time order, as the live proxy and replay apply them."""
    admitted = 0
    pending: deque[tuple[float, str]] = deque()
    for i in range(per_s * seconds):
        at = start + i / per_s
        while pending and pending[0][0] <= at:
            lim.settle(pending[0][1], pending.popleft()[0], None, 30)
        rid = f"{who}-{start}-{i}"
        if lim.admit(rid, at, Subject(who, "t", None, "m"), [], rates, 0.0, 50).allowed:
            admitted += 1
            pending.append((at + 0.5, rid))
    while pending:
        lim.settle(pending[0][1], pending.popleft()[0], None, 30)
    return admitted


def _state_bytes(run) -> int:
    """Bytes still allocated after ``run()`` (the state it leaves behind)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_an_rpm_only_key_keeps_no_per_request_records():
    lim = Limits()
    rates = _rate(rpm=10**9)  # never refuses: every request is admitted and settled
    _traffic(lim, rates, per_s=200, seconds=5)
    grown = _state_bytes(lambda: _traffic(lim, rates, per_s=200, seconds=300, start=T0 + 5))
    # 60,000 more requests; the old state kept ~120 bytes of token record per request (7 MB)
    assert grown < 64_000, grown
    assert len(lim.windows[("key", "k1")].buckets) <= 60


def test_a_tpm_window_holds_at_most_60_buckets_at_any_rate():
    lim = Limits()
    rates = _rate(tpm=10**12)
    _traffic(lim, rates, per_s=1000, seconds=5)
    # 65,000 more settlements, 60,000 of them in the window: the old state kept each one (~5 MB)
    grown = _state_bytes(lambda: _traffic(lim, rates, per_s=1000, seconds=65, start=T0 + 5))
    assert grown < 64_000, grown
    w = lim.windows[("key", "k1")]
    assert len(w.buckets) <= 60 and w.reserved == 0
    # the last settlement is at T0 + 70.499: seconds T0 + 11 .. T0 + 70 count, i.e. request 10,500 on
    assert w.tokens == 30 * (70_000 - 10_500)


def test_the_running_totals_equal_the_events_in_the_window():
    lim = Limits()
    rates = _rate(tpm=10**12)
    _traffic(lim, rates, per_s=7, seconds=200)
    last = T0 + (7 * 200 - 1) / 7
    w = lim.windows[("key", "k1")]
    w.expire(last + 0.5)
    first_counted = int(last + 0.5) - 59  # seconds [floor(now) - 59, floor(now)]
    settles = [T0 + i / 7 + 0.5 for i in range(7 * 200)]
    admits = [T0 + i / 7 for i in range(7 * 200)]
    assert w.tokens == 30 * sum(1 for t in settles if int(t) >= first_counted)
    assert w.requests == sum(1 for t in admits if int(t) >= first_counted)
    assert w.requests == sum(b[1] for b in w.buckets) and w.tokens == sum(b[2] for b in w.buckets)


def test_rpm_window_slides_by_whole_seconds_and_says_when_to_retry():
    lim = Limits()
    rates = _rate(rpm=2)
    s = Subject("k1", None, None, "m")
    assert lim.admit("a", T0 + 0.25, s, [], rates, 0.0, 1).allowed
    assert lim.admit("b", T0 + 10.5, s, [], rates, 0.0, 1).allowed
    v = lim.admit("c", T0 + 59.9, s, [], rates, 0.0, 1)
    assert not v.allowed and v.kind == "rate_limited"
    assert v.retry_after_s == pytest.approx(0.1)  # second T0 leaves the window at T0 + 60
    assert lim.admit("d", T0 + 60.0, s, [], rates, 0.0, 1).allowed
    assert not lim.admit("e", T0 + 69.0, s, [], rates, 0.0, 1).allowed  # b and d


def test_tpm_counts_reserved_then_settled_tokens():
    lim = Limits()
    rates = _rate(tpm=100)
    s = Subject("k1", None, None, "m")
    assert lim.admit("a", T0, s, [], rates, 0.0, 90).allowed
    assert lim.admit("b", T0 + 1, s, [], rates, 0.0, 10).allowed  # 90 reserved < 100
    v = lim.admit("c", T0 + 2, s, [], rates, 0.0, 1)  # 100 reserved
    assert not v.allowed and v.retry_after_s == 1.0  # nothing settled yet: try again in a second
    lim.settle("a", T0 + 3, None, 20)
    lim.settle("b", T0 + 3, None, 20)
    w = lim.windows[("key", "k1")]
    assert (w.tokens, w.reserved) == (40, 0)
    assert lim.admit("d", T0 + 4, s, [], rates, 0.0, 5).allowed


def test_idle_subjects_are_dropped():
    lim = Limits()
    for k in range(2000):
        _traffic(lim, _rate(rpm=100, who=f"k{k}"), per_s=1, seconds=1, start=T0 + k / 1000, who=f"k{k}")
    assert len(lim.windows) == 2000
    # a minute later, a few windows are looked at per admission: no pause to sweep them all
    for i in range(3):
        lim.admit(f"step{i}", T0 + 125 + i, Subject("k1", "t", None, "m"), [], _rate(rpm=10**6), 0.0, 1)
    assert 2000 - 2 * 4 <= len(lim.windows) < 2000
    _traffic(lim, _rate(rpm=10**6), per_s=100, seconds=6, start=T0 + 125)
    assert len(lim.windows) == 1  # only the key active in the last minute


def test_a_window_with_a_request_in_flight_is_kept():
    lim = Limits()
    s = Subject("long", None, None, "m")
    assert lim.admit("stream", T0, s, [], _rate(tpm=1000, who="long"), 0.0, 400).allowed
    _traffic(lim, _rate(rpm=10**6), per_s=10, seconds=5, start=T0 + 300)  # sweeps
    assert len(lim.windows) == 2
    assert lim.windows[("key", "long")].reserved == 400
    assert not lim.admit("x", T0 + 301, s, [], _rate(tpm=400, who="long"), 0.0, 1).allowed
    lim.settle("stream", T0 + 302, None, 10)
    assert lim.windows[("key", "long")].reserved == 0
    assert lim.admit("y", T0 + 303, s, [], _rate(tpm=400, who="long"), 0.0, 1).allowed


def test_past_budget_windows_are_dropped_once_a_day():
    lim = Limits()
    budget = [Budget(BudgetLimit(scope="key", name="k1", usd=100.0, window="day"), "k1")]
    s = Subject("k1", "t", None, "m")
    for day in range(40):
        for i in range(10):
            at = T0 + day * 86_400 + i * 60
            assert lim.admit(f"r{day}-{i}", at, s, budget, [], 0.001, 0).allowed
            lim.settle(f"r{day}-{i}", at + 1, 0.001, 0)
    # the current day, week and month of 3 scopes (global, team, key): 40 days, 9 buckets
    assert len(lim.committed) == 9, sorted(lim.committed)
    assert lim.spend("key", "k1", "day", T0 + 39 * 86_400 + 600) == (pytest.approx(0.01), 0.0)
