"""Circuit breakers, one per (route, target) of every route with a ``breaker`` section.

closed → open after ``failures`` failed attempts within ``window_s``; while open the target
gets no traffic; after ``cooldown_s`` it is half-open and lets exactly one request through
as a probe: success closes it, failure reopens it for another cooldown. A probe whose
request was abandoned (client gone) frees the slot for the next request.

The breakers live in the gateway, not the policy snapshot: a reload keeps the state of
every (route, target) that still has a breaker and forgets the others.

With ``state: {breakers: shared}`` a :class:`~llmgw_kernel.state.breakers.SharedBreakers`
link is attached (``Breakers.link``): it hears every transition made here (to publish it)
and applies circuits opened or closed by other processes through :meth:`Breaker.adopt`,
which moves the state without publishing it back. A half-open probe then needs the link's
permission (``gate``): one process at a time probes a shared circuit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..policy.model import BreakerSettings, Policy

log = logging.getLogger("llmgw.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}

Clock = Callable[[], float]
OnTransition = Callable[[str, str, str, str], None]  # (route, target, from, to)


class SharedLink(Protocol):
    """What a shared breaker asks of the link to Redis (state/breakers.py)."""

    def may_probe(self, breaker: Breaker) -> bool:
        """May this process probe this half-open circuit now (it holds the probe lease)?"""

    def moved(self, breaker: Breaker, before: str, to: str) -> None:
        """A transition decided here (publish it)."""

    def released(self, breaker: Breaker) -> None:
        """This process's probe ended without a verdict (give the probe up to the others)."""


class Breaker:
    """The breaker of one target of one route. Not thread-safe: the event loop owns it."""

    __slots__ = (
        "route", "target", "settings", "shared", "_clock", "_notify", "_failures", "_state", "_opened_at", "_probing",
    )  # fmt: skip

    def __init__(self, route: str, target: str, settings: BreakerSettings, clock: Clock, notify: OnTransition) -> None:
        self.route = route
        self.target = target
        self.settings = settings
        self.shared: SharedLink | None = None  # set while ``state.breakers`` is shared
        self._clock = clock
        self._notify = notify
        self._failures: deque[float] = deque()
        self._state = CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def probing(self) -> bool:
        """A half-open probe of this process is in flight."""
        return self._probing

    @property
    def opened_at(self) -> float:
        """Clock reading at which the circuit last opened (here or, adopted, elsewhere)."""
        return self._opened_at

    @property
    def state(self) -> str:
        """closed | open | half_open (an open breaker past its cooldown reads as half_open)."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.settings.cooldown_s:
            return HALF_OPEN
        return self._state

    def acquire(self) -> str | None:
        """Before an attempt: None = go ahead, else why the target is skipped."""
        state = self.state
        if state == CLOSED:
            return None
        if state == OPEN:
            left = self.settings.cooldown_s - (self._clock() - self._opened_at)
            return f"circuit open ({left:.1f}s of cooldown left)"
        if self._probing:
            return "circuit half-open (a probe is in flight)"
        if self.shared is not None and not self.shared.may_probe(self):
            return "circuit half-open (another replica probes it)"
        if self._state == OPEN:
            self._move(HALF_OPEN)
        self._probing = True
        return None

    def success(self) -> None:
        if self._state == HALF_OPEN:
            self._probing = False
            self._failures.clear()
            self._move(CLOSED)

    def failure(self) -> None:
        now = self._clock()
        if self._state == HALF_OPEN:
            self._probing = False
            self._open(now)
            return
        if self._state == OPEN:
            return
        failures = self._failures
        failures.append(now)
        horizon = now - self.settings.window_s
        while failures and failures[0] < horizon:
            failures.popleft()
        if len(failures) >= self.settings.failures:
            self._open(now)

    def release(self) -> None:
        """The attempt ended without a verdict (cancelled): a half-open probe slot is freed."""
        if self._state == HALF_OPEN:
            self._probing = False
            if self.shared is not None:
                self.shared.released(self)

    def adopt(self, left_s: float | None) -> None:
        """Take a shared circuit's state decided by another process, without publishing it back:
        ``left_s`` seconds of cooldown left (0: half-open), or None: the circuit closed."""
        if left_s is None:
            if self._state != CLOSED and not self._probing:
                self._failures.clear()
                self._move(CLOSED, remote=True)
            return
        opened_at = self._clock() - (self.settings.cooldown_s - left_s)
        if self._state == CLOSED or (self._state == OPEN and opened_at > self._opened_at):
            self._failures.clear()
            self._opened_at = opened_at
            if self._state == CLOSED:
                self._move(OPEN, remote=True)

    def _open(self, now: float) -> None:
        self._failures.clear()
        self._opened_at = now
        self._move(OPEN)

    def _move(self, to: str, remote: bool = False) -> None:
        before, self._state = self._state, to
        log.warning("circuit %s %s: %s -> %s%s", self.route, self.target, before, to, " (shared)" if remote else "")
        self._notify(self.route, self.target, before, to)
        if not remote and self.shared is not None:
            self.shared.moved(self, before, to)


class Breakers:
    """Every breaker of the gateway, keyed by (route, target id)."""

    def __init__(self, clock: Clock = time.monotonic, notify: OnTransition | None = None) -> None:
        self._clock = clock
        self._notify: OnTransition = notify or (lambda *_: None)
        self._settings: dict[str, BreakerSettings] = {}
        self._by_key: dict[tuple[str, str], Breaker] = {}
        self.mode = "local"  # the policy's state.breakers
        self.link: SharedLink | None = None  # attached by the shared state when Redis is configured

    def sync(self, policy: Policy) -> None:
        """Follow a (re)loaded policy: keep existing state, add new breakers, drop gone ones."""
        self.mode = policy.state.breakers if policy.state is not None else "local"
        self._settings = {name: r.breaker for name, r in policy.routes.items() if r.breaker is not None}
        wanted = {(name, t) for name in self._settings for t in _route_targets(policy.routes[name])}
        for key in list(self._by_key):
            if key not in wanted:
                del self._by_key[key]
        for key in wanted:
            self.get(*key)
        self.attach(self.link)

    @property
    def shared(self) -> bool:
        """Circuits are shared with the other processes now (policy says so and a link exists)."""
        return self.mode == "shared" and self.link is not None

    def attach(self, link: SharedLink | None) -> None:
        """Connect every breaker to ``link`` while the policy shares breakers (else detach them)."""
        self.link = link
        for breaker in self._by_key.values():
            breaker.shared = link if self.shared else None

    def items(self) -> list[tuple[tuple[str, str], Breaker]]:
        """Every (route, target) breaker."""
        return list(self._by_key.items())

    def get(self, route: str, target: str) -> Breaker | None:
        """The breaker of ``target`` on ``route`` (created on first use), None if the route has none."""
        breaker = self._by_key.get((route, target))
        settings = self._settings.get(route)
        if settings is None:
            return None
        if breaker is None:
            breaker = self._by_key[(route, target)] = Breaker(route, target, settings, self._clock, self._notify)
            breaker.shared = self.link if self.shared else None
        else:
            breaker.settings = settings
        return breaker

    def states(self) -> dict[tuple[str, str], str]:
        return {key: b.state for key, b in self._by_key.items()}


def _route_targets(route: object) -> list[str]:
    """Target ids a route can send to (its declared targets and, where present, its rules')."""
    ids = [t.id for t in getattr(route, "targets", ())]
    for rule in getattr(route, "rules", None) or ():
        ids += [t.id for t in rule.targets if t.id not in ids]
    return list(dict.fromkeys(ids))
