"""Admission: budgets and rate limits, decided the same way live and in replay (docs/budgets.md).

A request is *admitted* at a moment ``at``; it then holds a *reservation* until it is
*settled* at its actual cost. The state is a fold of those two kinds of event in time order,
so the live proxy (which applies them on the event loop as they happen) and replay (which
reads their times, reservations and costs from the log) reach the same decisions.

Budgets (per key, team, user and global; day / week / month windows in the policy's time
zone): a request is admitted while, for every hard budget that applies to it,
``committed spend + reservations in flight < budget``, all counted in whole nano-dollars
(integers: a sum does not depend on the order of its terms, so the live proxy, a restart that
sums the log in SQL and replay all reach the same decision); it then reserves its worst-case cost
in each. So N concurrent requests overspend by at most one request's worst case, and a
settled (or failed) request always gives its reservation back. Soft budgets never refuse;
they flag. Spend counts in the window the request was admitted in.

Rate limits (per key, team, user, route and global): requests per minute = admissions in the
last minute; tokens per minute = tokens of requests settled in the last minute plus the tokens
reserved by requests in flight (prompt upper bound + max_tokens). "The last minute" is the
current second and the 59 before it (:class:`RateWindow`: running totals over 1 s buckets, so
a check costs the same at any traffic). A refusal says when to retry.

>>> from datetime import datetime, UTC
>>> from llmgw_kernel.policy.model import BudgetLimit
>>> lim = Limits(timezone="UTC")
>>> team = [Budget(BudgetLimit(scope="team", usd=1.0), "search")]
>>> at = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
>>> lim.admit("r1", at, Subject("k1", "search", None, "m"), team, [], 0.6, 10).allowed
True
>>> lim.admit("r2", at + 1, Subject("k1", "search", None, "m"), team, [], 0.6, 10).allowed  # 0.6 in flight < 1.0
True
>>> v = lim.admit("r3", at + 2, Subject("k1", "search", None, "m"), team, [], 0.6, 10)
>>> v.allowed, v.reason  # doctest: +NORMALIZE_WHITESPACE
(False, "team 'search' monthly budget of $1.00 is exhausted ($0.00 spent + $1.20 in flight;
 resets 2026-12-01T00:00:00+00:00)")
>>> lim.settle("r1", at + 3, 0.01, 20); lim.settle("r2", at + 3, 0.01, 20)
>>> lim.admit("r4", at + 4, Subject("k1", "search", None, "m"), team, [], 0.6, 10).allowed
True
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..keys.store import VirtualKey
    from ..policy.model import BudgetLimit, Policy, RateLimit

RATE_WINDOW_S = 60.0
NANO = 1_000_000_000  # spend and reservations are counted in nano-dollars


def nano(usd: float) -> int:
    """``usd`` in whole nano-dollars (costs are priced to 9 decimals: exact for them)."""
    return round(usd * NANO)


_WINDOW_WORD = {"day": "daily", "week": "weekly", "month": "monthly"}


class Subject(NamedTuple):
    """Who a request is, to the limits."""

    key: str | None  # virtual key id (or the open-mode fingerprint)
    team: str | None
    user: str | None
    route: str


class Budget(NamedTuple):
    """A budget limit bound to the team/user/key it applies to (``who``; None for global)."""

    limit: BudgetLimit
    who: str | None


class Rate(NamedTuple):
    limit: RateLimit
    who: str | None


class Verdict(NamedTuple):
    allowed: bool
    kind: str  # ok | budget_exceeded | rate_limited
    reason: str | None  # which limit refused, in words
    retry_after_s: float | None
    flags: tuple[str, ...]  # soft budgets exceeded
    limit: str | None = None  # the refusing limit's name ("team 'search' monthly budget of $300.00")


def _describe(limit: BudgetLimit | RateLimit, who: str | None) -> str:
    return "global" if limit.scope == "global" else f"{limit.scope} {who!r}"


def money(usd: float) -> str:
    """Dollars in words: cents, or the significant digits of an amount under a cent (a $0.002
    budget is not "$0.00").

    >>> money(300), money(0.6), money(0), money(0.002), money(0.0001234567)
    ('$300.00', '$0.60', '$0.00', '$0.002', '$0.000123457')
    """
    return f"${usd:,.2f}" if usd == 0 or abs(usd) >= 0.01 else f"${usd:.6g}"


def budget_name(b: Budget) -> str:
    """A budget in words: "team 'search' monthly budget of $300.00"."""
    return f"{_describe(b.limit, b.who)} {_WINDOW_WORD[b.limit.window]} budget of {money(b.limit.usd)}"


def budget_refusal(b: Budget, spent: float, held: float, end: datetime) -> tuple[str, str]:
    """(reason, limit name) of a hard budget refusing with ``spent`` + ``held`` in its window ending at ``end``."""
    what = budget_name(b)
    return f"{what} is exhausted ({money(spent)} spent + {money(held)} in flight; resets {end.isoformat()})", what


def rate_refusal(r: Rate, column: int) -> tuple[str, str]:
    """(reason, limit name) of a rate limit refusing on requests (``column`` 1) or tokens (2) per minute."""
    what = _describe(r.limit, r.who)
    if column == 1:
        return f"{what} limit of {r.limit.rpm} requests per minute reached", what
    return f"{what} limit of {r.limit.tpm:,} tokens per minute reached", what


def applicable_budgets(policy: Policy, key: VirtualKey | None, subject: Subject) -> list[Budget]:
    """The budgets a request answers to: the policy's that match it, plus its key's own."""
    out: list[Budget] = []
    b = policy.budgets
    for limit in b.limits if b is not None else ():
        who = _who(limit.scope, subject)
        if limit.scope != "global" and who is None:
            continue  # e.g. a team budget, a request without a team
        if limit.name is not None and limit.name != who:
            continue
        out.append(Budget(limit, who))
    if key is not None and key.settings.budget_usd is not None:
        out.append(Budget(_own_budget(key.id, key.settings.budget_usd, key.settings.budget_window), key.id))
    return out


@functools.lru_cache(maxsize=4096)
def _own_budget(key_id: str, usd: float, window: str) -> BudgetLimit:
    from ..policy.model import BudgetLimit

    return BudgetLimit(scope="key", name=key_id, usd=usd, window=window)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4096)
def _own_rate(key_id: str, rpm: int | None, tpm: int | None) -> RateLimit:
    from ..policy.model import RateLimit

    return RateLimit(scope="key", name=key_id, rpm=rpm, tpm=tpm)


def applicable_rates(policy: Policy, key: VirtualKey | None, subject: Subject) -> list[Rate]:
    out: list[Rate] = []
    for limit in policy.rate_limits:
        who = _who(limit.scope, subject)
        if limit.scope != "global" and who is None:
            continue
        if limit.name is not None and limit.name != who:
            continue
        out.append(Rate(limit, who))
    if key is not None and (key.settings.rpm or key.settings.tpm):
        out.append(Rate(_own_rate(key.id, key.settings.rpm, key.settings.tpm), key.id))
    return out


def prompt_upper_bound(body: Mapping[str, Any]) -> int:
    """More prompt tokens than ``body`` can cost on any byte-level tokenizer (every token
    covers at least one UTF-8 byte): the bytes of every message and of the tools, response
    format and functions, plus a per-message allowance for the chat framing.

    >>> prompt_upper_bound({"messages": [{"role": "user", "content": "hi"}]})  # 30 bytes of JSON + 26
    56
    """
    import orjson

    total = 16
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            total += 10 + len(orjson.dumps(m)) if isinstance(m, dict) else 10
    elif "input" in body:  # embeddings
        total += len(orjson.dumps(body["input"]))
    for k in ("tools", "functions", "response_format", "tool_choice"):
        if body.get(k) is not None:
            total += len(orjson.dumps(body[k]))
    return total


def completion_upper_bound(body: Mapping[str, Any], default: int) -> int:
    """Completion tokens a request may bill: max tokens (or ``default``) for each of ``n`` choices."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        limit = default
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return limit * choices


def worst_case_usd(policy: Policy, targets: tuple[str, ...] | list[str], prompt_tokens: int, max_tokens: int) -> float:
    """The most a request can cost on any target it may be served by (unpriced targets: 0)."""
    from .cost import cost_usd

    costs = [cost_usd(policy, t, prompt_tokens, max_tokens) for t in targets]
    return max((c for c in costs if c is not None), default=0.0)


def _who(scope: str, s: Subject) -> str | None:
    if scope == "team":
        return s.team
    if scope == "user":
        return s.user
    if scope == "key":
        return s.key
    return s.route if scope == "route" else None


def window_bounds(at: float, window: str, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of the calendar window containing ``at`` in ``timezone``."""
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(at, ZoneInfo(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        start, end = day, day + timedelta(days=1)
    elif window == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # zoneinfo offsets follow the wall time, so these midnights are right across DST changes
    return start, end


@dataclass
class _Flight:
    subject: Subject
    at: float
    buckets: list[tuple]
    usd: int  # nano-dollars reserved
    rate_buckets: list[tuple]
    tokens: int


_SCOPES = ("global", "team", "user", "key")
_WINDOWS = ("day", "week", "month")
_BUCKETS = int(RATE_WINDOW_S)  # one per second: the current second and the 59 before it
_ALL_PAIRS = tuple((scope, w) for scope in _SCOPES for w in _WINDOWS)
_SWEEP_STEP = 4  # idle windows / past budget buckets looked at per admission


class RateWindow:
    """One scope and subject's last minute: admissions and settled tokens in 1 s buckets, with
    running totals, plus the tokens reserved by its requests in flight.

    A sliding window of 60 one-second buckets: an event at ``t`` counts until the start of
    the 60th second after ``t``'s (``floor(t) + 60``), so for 59 to 60 s, and a refusal's
    retry-after is when the oldest counted bucket leaves. The buckets are ``[second, requests,
    tokens]``, oldest first; at most 60 are held, so adding, checking and expiring are O(1)
    and the memory is bounded whatever the traffic. An event older than the newest bucket
    (the clock stepped back) counts in the newest bucket.

    >>> w = RateWindow()
    >>> w.add(100.2, 1, 0); w.add(100.9, 1, 30); w.add(130.0, 1, 0)
    >>> w.expire(159.9); w.requests, w.tokens  # second 100 still counts at 159.x
    (3, 30)
    >>> w.expire(160.0); w.requests, w.tokens, len(w.buckets)
    (1, 0, 1)
    """

    __slots__ = ("buckets", "requests", "tokens", "reserved")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.requests = 0
        self.tokens = 0
        self.reserved = 0  # tokens held by admitted requests not yet settled

    def expire(self, at: float) -> None:
        """Drop the buckets that have left the window at ``at``."""
        horizon = math.floor(at) - _BUCKETS + 1
        b = self.buckets
        while b and b[0][0] < horizon:
            _, n, t = b.popleft()
            self.requests -= n
            self.tokens -= t

    def add(self, at: float, requests: int, tokens: int) -> None:
        """Count ``requests`` admissions and ``tokens`` settled tokens at ``at``."""
        self.expire(at)
        b = self.buckets
        sec = math.floor(at)
        if not b or b[-1][0] < sec:
            b.append([sec, requests, tokens])
        else:
            b[-1][1] += requests
            b[-1][2] += tokens
        self.requests += requests
        self.tokens += tokens

    def leaves_after(self, at: float, column: int) -> float:
        """Seconds from ``at`` until the oldest bucket counting in ``column`` (1: requests,
        2: tokens) leaves the window (1 s when none does)."""
        for bucket in self.buckets:
            if bucket[column]:
                return max(bucket[0] + _BUCKETS - at, 0.001)
        return 1.0

    @property
    def idle(self) -> bool:
        return not self.buckets and not self.reserved


@dataclass
class Limits:
    """The admission state: spend per budget window, reservations and rate windows.

    Its size is bounded by what is current: budget buckets of the current calendar windows
    (past days, weeks and months are dropped after each midnight), one :class:`RateWindow` of
    at most 60 buckets per scope and subject active in the last minute or two (idle ones are
    dropped after every minute), and one flight per request in flight."""

    timezone: str = "UTC"
    #: the (scope, window) pairs spend is counted in for every subject; None: all of them (a
    #: state that reads no policy: tests, tools). Live (:func:`live_counting`) and in replay, only
    #: the pairs the budgets read: a name no budget reads costs no memory (docs/budgets.md).
    counted: frozenset[tuple[str, str]] | None = None
    #: besides: (scope, who) -> windows counted for that one subject (budgets naming it)
    named: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    #: besides: key ids counted in every window of the key scope (live: the virtual keys, any of
    #: which may be given a budget of its own; not the open-mode fingerprints). None: no key.
    keys: Container[str] | None = None
    committed: dict[tuple, int] = field(default_factory=dict)  # nano-dollars
    reserved: dict[tuple, int] = field(default_factory=dict)  # nano-dollars
    flights: dict[str, _Flight] = field(default_factory=dict)
    windows: dict[tuple, RateWindow] = field(default_factory=dict)  # (scope, who) -> its last minute
    _bounds: dict[tuple[str, str], tuple[float, float, datetime]] = field(default_factory=dict)
    _next_sweep: float = float("-inf")
    _swept_day: float = float("-inf")
    _idle_queue: list[tuple] = field(default_factory=list)  # rate windows left to look at
    _stale_queue: list[tuple] = field(default_factory=list)  # budget buckets left to look at
    #: while a reload that changes the time zone is seeded (:meth:`start_zone`): the new zone's
    #: buckets, counting every commit from the reload's cut on (this state still counts in its own)
    next_zone: Limits | None = None

    def bounds(self, at: float, window: str) -> tuple[float, datetime]:
        """(start as epoch seconds, end) of ``window`` around ``at`` in this state's time zone,
        reused while ``at`` stays inside it."""
        hit = self._bounds.get((window, self.timezone))
        if hit is not None and hit[0] <= at < hit[1]:
            return hit[0], hit[2]
        start, end = window_bounds(at, window, self.timezone)
        self._bounds[(window, self.timezone)] = (start.timestamp(), end.timestamp(), end)
        return start.timestamp(), end

    def admit(
        self, rid: str, at: float, subject: Subject, budgets: list[Budget], rates: list[Rate],
        worst_usd: float, worst_tokens: int,
    ) -> Verdict:  # fmt: skip
        """Decide at ``at``; when admitted, reserve ``worst_usd`` and ``worst_tokens``."""
        self._sweep_some(at)
        retry = self._rate_check(at, rates)
        if retry is not None:
            return retry
        flags: list[str] = []
        buckets: list[tuple] = []
        for b in budgets:
            start, end = self.bounds(at, b.limit.window)
            bucket = (b.limit.scope, b.who, b.limit.window, start)
            buckets.append(bucket)
            spent = self.committed.get(bucket, 0)
            held = self.reserved.get(bucket, 0)
            if spent + held >= nano(b.limit.usd):
                if b.limit.mode == "hard":
                    reason, what = budget_refusal(b, spent / NANO, held / NANO, end)
                    return Verdict(False, "budget_exceeded", reason, max(0.0, end.timestamp() - at), (), what)
                flags.append(budget_name(b))
        worst = nano(worst_usd)
        for bucket in buckets:
            self.reserved[bucket] = self.reserved.get(bucket, 0) + worst
        # one window per (scope, who), whatever the limit's value: lowering a limit applies at once
        rate_buckets = rate_buckets_of(rates)
        for rb in rate_buckets:
            w = self.windows.get(rb)
            if w is None:
                w = self.windows[rb] = RateWindow()
            w.add(at, 1, 0)
            w.reserved += worst_tokens
        self.flights[rid] = _Flight(subject, at, buckets, worst, rate_buckets, worst_tokens)
        return Verdict(True, "ok", None, None, tuple(flags))

    def settle(self, rid: str, at: float, cost_usd: float | None, tokens: int | None) -> None:
        """Give the reservation back and count what the request really cost."""
        flight = self.flights.pop(rid, None)
        if flight is None:
            return
        for bucket in flight.buckets:
            held = self.reserved.get(bucket, 0) - flight.usd
            if held:
                self.reserved[bucket] = held
            else:
                self.reserved.pop(bucket, None)
        self.commit(flight.subject, flight.at, cost_usd)
        for rb in flight.rate_buckets:
            w = self.windows.get(rb)
            if w is None:  # swept while idle cannot happen with tokens reserved; recreate all the same
                w = self.windows[rb] = RateWindow()
            w.reserved = max(0, w.reserved - flight.tokens)
            w.add(at, 0, tokens or 0)

    def record(self, rate_buckets: list[tuple], at: float, requests: int, tokens: int) -> None:
        """Count past admissions or settled tokens in rate windows (the start-up rebuild)."""
        for rb in rate_buckets:
            w = self.windows.get(rb)
            if w is None:
                w = self.windows[rb] = RateWindow()
            w.add(at, requests, tokens)

    def commit(self, subject: Subject, at: float, cost_usd: float | None) -> None:
        """Count spend in the buckets of ``subject`` this state counts (:meth:`spend_buckets`)."""
        if cost_usd:
            self.commit_nano(subject, at, nano(cost_usd))

    def commit_nano(self, subject: Subject, at: float, amount: int) -> None:
        """:meth:`commit` of ``amount`` nano-dollars (a sum the log already holds in them)."""
        if not amount:
            return
        committed = self.committed
        for bucket in self.spend_buckets(subject, at):
            committed[bucket] = committed.get(bucket, 0) + amount
        if self.next_zone is not None:
            self.next_zone.commit_nano(subject, at, amount)

    def commit_buckets(self, subject: Subject, at: float) -> list[tuple]:
        """The buckets a commit at ``at`` counts in: :meth:`spend_buckets`, and while a time-zone
        change is seeded, the new zone's too (each once: a window may start at the same instant
        in both zones)."""
        out = self.spend_buckets(subject, at)
        if self.next_zone is not None:
            out = list(dict.fromkeys(out + self.next_zone.spend_buckets(subject, at)))
        return out

    def spend_buckets(self, subject: Subject, at: float) -> list[tuple]:
        """The budget buckets ``(scope, who, window, start)`` spent at ``at`` by ``subject``
        counts in (the shared state commits to the same ones: llmgw_kernel/state/admission.py)."""
        out = []
        pairs = _ALL_PAIRS if self.counted is None else self.counted
        for scope, w in pairs:
            who = _who(scope, subject)
            if scope != "global" and who is None:
                continue
            out.append((scope, who, w, self.bounds(at, w)[0]))
        if self.named:
            for scope in ("team", "user", "key"):
                who = _who(scope, subject)
                for w in self.named.get((scope, who), ()) if who is not None else ():
                    if (scope, w) not in pairs:
                        out.append((scope, who, w, self.bounds(at, w)[0]))
        if self.keys is not None and subject.key is not None and subject.key in self.keys:
            named = self.named.get(("key", subject.key), ())
            out += [("key", subject.key, w, self.bounds(at, w)[0]) for w in _WINDOWS
                    if ("key", w) not in pairs and w not in named]  # fmt: skip
        return out

    def counts(self, bucket: tuple) -> bool:
        """Whether spend is counted in ``bucket`` ``(scope, who, window, start)``."""
        return counted_in(self.counted, self.named, self.keys, bucket)

    def count_as(self, counted: frozenset[tuple[str, str]], named: Mapping[tuple[str, str], frozenset[str]]) -> None:
        """Count spend in these pairs from now on, and forget the buckets no longer counted (a
        reload that removes a budget gives its subjects' memory back)."""
        self.counted, self.named = counted, named
        self.committed = {b: v for b, v in self.committed.items() if self.counts(b)}
        self._stale_queue = []

    def start_zone(self, timezone: str, counted: frozenset[tuple[str, str]],
                   named: Mapping[tuple[str, str], frozenset[str]]) -> None:  # fmt: skip
        """Count every commit from now on in ``timezone``'s buckets too (as ``counted``, ``named``
        and this state's keys say), besides this state's own, until :meth:`switch_zone`."""
        self.next_zone = Limits(timezone=timezone, counted=counted, named=named, keys=self.keys)

    def switch_zone(self, seeded: Mapping[tuple, int], at: float) -> None:
        """Count in the zone :meth:`start_zone` began: committed spend becomes ``seeded`` (the
        new zone's spend up to the moment it began) plus what it counted since, in the windows
        current at ``at`` (the old zone's buckets are dropped); the reservations of the requests
        in flight move to the new zone's windows of their admission."""
        nxt, self.next_zone = self.next_zone, None
        assert nxt is not None, "switch_zone without start_zone"
        self.timezone = nxt.timezone
        committed: dict[tuple, int] = {}
        for source in (seeded, nxt.committed):
            for bucket, amount in source.items():
                if bucket[3] == self.bounds(at, bucket[2])[0]:
                    committed[bucket] = committed.get(bucket, 0) + amount
        self.committed = committed
        reserved: dict[tuple, int] = {}
        for flight in self.flights.values():
            flight.buckets = [(s, who, w, self.bounds(flight.at, w)[0]) for s, who, w, _ in flight.buckets]
            for bucket in flight.buckets:
                reserved[bucket] = reserved.get(bucket, 0) + flight.usd
        self.reserved = reserved
        self._stale_queue = []
        self._swept_day = float("-inf")

    def _sweep_some(self, at: float) -> None:
        """Drop idle rate windows and budget buckets of past windows, a few per admission: every
        minute the rate windows (every day the budget buckets) are queued, then looked at
        ``_SWEEP_STEP`` at a time, so the cost is O(1) per request with no pause to sweep all."""
        if not self._idle_queue and not self._stale_queue:
            if at >= self._next_sweep:
                self._next_sweep = at + RATE_WINDOW_S
                self._idle_queue = list(self.windows)
                day = self.bounds(at, "day")[0]
                if day > self._swept_day:
                    self._swept_day = day
                    self._stale_queue = list(self.committed)
            return
        for _ in range(_SWEEP_STEP):
            if self._idle_queue:
                rb = self._idle_queue.pop()
                w = self.windows.get(rb)
                if w is not None:
                    w.expire(at)
                    if w.idle:
                        del self.windows[rb]
            if self._stale_queue:
                bucket = self._stale_queue.pop()
                if bucket[3] < self.bounds(at, bucket[2])[0]:
                    self.committed.pop(bucket, None)

    def _rate_check(self, at: float, rates: list[Rate]) -> Verdict | None:
        for r in rates:
            w = self.windows.get(_rate_bucket(r))
            if w is None:
                continue
            w.expire(at)
            if r.limit.rpm is not None and w.requests >= r.limit.rpm:
                reason, what = rate_refusal(r, 1)
                return Verdict(False, "rate_limited", reason, w.leaves_after(at, 1), (), what)
            if r.limit.tpm is not None and w.tokens + w.reserved >= r.limit.tpm:
                reason, what = rate_refusal(r, 2)
                return Verdict(False, "rate_limited", reason, w.leaves_after(at, 2), (), what)
        return None

    def spend(self, scope: str, who: str | None, window: str, at: float) -> tuple[float, float]:
        """(committed, in flight) of one budget bucket at ``at``."""
        start, _ = self.bounds(at, window)
        bucket = (scope, who, window, start)
        return self.committed.get(bucket, 0) / NANO, self.reserved.get(bucket, 0) / NANO


def counted_in(
    counted: frozenset[tuple[str, str]] | None, named: Mapping[tuple[str, str], frozenset[str]],
    keys: Container[str] | None, bucket: tuple,
) -> bool:  # fmt: skip
    """Whether spend is counted in ``bucket`` ``(scope, who, window, start)`` by a state counting
    ``counted``, ``named`` and ``keys`` (:class:`Limits`' fields of those names)."""
    scope, who, w = bucket[0], bucket[1], bucket[2]
    if counted is None or (scope, w) in counted or w in named.get((scope, who), ()):
        return True
    return scope == "key" and keys is not None and who in keys


def budget_timezone(policy: Policy) -> str:
    """The time zone ``policy``'s budget windows are counted in (UTC when it has no budgets)."""
    return policy.budgets.timezone if policy.budgets is not None else "UTC"


def live_counting(policy: Policy) -> tuple[frozenset[tuple[str, str]], dict[tuple[str, str], frozenset[str]]]:
    """What live admission counts spend in for ``policy``: the (scope, window) pairs of its
    global budgets and of those for each team / user / key (every subject of the scope), and
    for a budget naming one subject, that subject's window only. Keys' own budgets are counted
    apart (:attr:`Limits.keys`). Nothing else reads committed spend: ``/metrics`` and
    ``/v1/llmgw/key`` show the budgets that apply, whose buckets these are."""
    limits = policy.budgets.limits if policy.budgets is not None else ()
    pairs = frozenset((b.scope, b.window) for b in limits if b.scope == "global" or b.name is None)
    named: dict[tuple[str, str], set[str]] = {}
    for b in limits:
        if b.scope != "global" and b.name is not None and (b.scope, b.window) not in pairs:
            named.setdefault((b.scope, b.name), set()).add(b.window)
    return pairs, {k: frozenset(v) for k, v in named.items()}


def counting_missing(
    lim: Limits, counted: frozenset[tuple[str, str]], named: Mapping[tuple[str, str], frozenset[str]]
) -> tuple[frozenset[tuple[str, str]], dict[tuple[str, str], frozenset[str]]]:  # fmt: skip
    """The part of (``counted``, ``named``) ``lim`` does not count yet (what a reload must seed)."""
    if lim.counted is None:
        return frozenset(), {}
    pairs = counted - lim.counted
    out: dict[tuple[str, str], frozenset[str]] = {}
    for (scope, who), windows in named.items():
        have = lim.named.get((scope, who), frozenset())
        left = frozenset(w for w in windows if (scope, w) not in lim.counted | pairs and w not in have)
        if left and not (scope == "key" and lim.keys is not None and who in lim.keys):
            out[(scope, who)] = left
    return pairs, out


def rate_buckets_of(rates: list[Rate]) -> list[tuple]:
    """The rate windows a request counts in: one per (scope, subject), in order, once each."""
    return list(dict.fromkeys(_rate_bucket(r) for r in rates))


def _rate_bucket(r: Rate) -> tuple:
    return (r.limit.scope, r.who)


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
