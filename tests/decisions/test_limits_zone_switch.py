"""Limits.start_zone / switch_zone (a reload changing budgets.timezone, docs/budgets.md "Hot
reload"): commits from the start count in the new zone's buckets too; the switch keeps the
new zone's current buckets (seeded + counted since), drops the old zone's, and moves the
reservations of requests in flight to the new zone's windows of their admission."""

from __future__ import annotations

from datetime import UTC, datetime

from llmgw_kernel.decisions.limits import NANO, Budget, Limits, Subject, nano, window_bounds
from llmgw_kernel.policy.model import BudgetLimit

AT = datetime(2026, 12, 6, 18, tzinfo=UTC).timestamp()  # 01:00 on Dec 7 in Asia/Ho_Chi_Minh
NEW = "Asia/Ho_Chi_Minh"
TEAM = [Budget(BudgetLimit(scope="team", usd=1.0, window="day"), "search")]
WHO = Subject("k", "search", None, "m")


def _day(tz: str, at: float = AT) -> float:
    return window_bounds(at, "day", tz)[0].timestamp()


def test_a_switch_keeps_the_new_zones_spend_and_moves_reservations():
    counted = frozenset({("team", "day")})
    lim = Limits(timezone="UTC", counted=counted)
    assert lim.admit("r1", AT, WHO, TEAM, [], 0.3, 10).allowed
    lim.settle("r1", AT + 1, 0.2, 5)
    assert lim.admit("r2", AT + 2, WHO, TEAM, [], 0.3, 10).allowed  # in flight across the switch
    old = ("team", "search", "day", _day("UTC"))
    new = ("team", "search", "day", _day(NEW))
    assert old != new

    lim.start_zone(NEW, counted, {})
    assert lim.commit_buckets(WHO, AT + 3) == [old, new]
    lim.commit(WHO, AT + 3, 0.05)  # settled after the cut: both zones
    assert lim.committed == {old: nano(0.25)} and lim.next_zone is not None
    assert lim.next_zone.committed == {new: nano(0.05)}

    earlier = ("team", "search", "day", _day(NEW, AT - 86_400))  # a past window the log also holds
    lim.switch_zone({new: nano(0.2), earlier: nano(9)}, AT + 4)
    assert lim.timezone == NEW and lim.next_zone is None
    assert lim.committed == {new: nano(0.25)}  # the seeded 0.20 + 0.05 counted since; no old bucket
    assert lim.reserved == {new: nano(0.3)}
    lim.settle("r2", AT + 5, 0.1, 5)
    assert lim.reserved == {} and lim.committed == {new: nano(0.35)}
    assert lim.spend("team", "search", "day", AT + 6) == (0.35, 0.0)
    assert lim.committed[new] / NANO == 0.35
