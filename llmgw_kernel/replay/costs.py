"""What a request would cost, and how long it would take, when a candidate serves it upstream.

Replay knows from the log what every request that ran upstream cost and took. A candidate
changes that in three ways, each estimated from the log (the basis is reported beside every
figure in the summary):

- **same plan, ran live**: the logged tokens (and cached prompt tokens) of the target that
  served, at the candidate's price of that target — exactly the logged ``cost_usd`` when the
  candidate's prices are the live ones. Settles at its logged time.
- **another plan**: the logged tokens at the candidate's prices, weighted by the chance that
  each target of the candidate's plan serves (a target fails with its logged per-attempt
  failure rate raised to the route's retry attempts; independent failures), as
  :mod:`.routing_estimates` explains.
- **never ran live** (refused by a live limit, or served from the cache live): the tokens of
  the answer it was served from the cache, else the route's mean logged prompt and
  completion tokens; it takes the latency of its cache source, else the route's median
  logged latency.

>>> route_means({"route": ["m", "m", "m"], "outcome": ["ok", "ok", "limited"],
...              "prompt_tokens": [10, 30, None], "completion_tokens": [5, 15, None]})
{'m': (20.0, 10.0)}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..decisions.cost import cost_usd
from .routing_estimates import _quantile, attempt_samples

if TYPE_CHECKING:
    from ..policy.model import Policy

Columns = Any  # a replay window: column name -> values


def route_means(window: Columns) -> dict[str, tuple[float, float]]:
    """Mean logged (prompt, completion) tokens of each route's successful requests."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for route, outcome, pt, ct in zip(
        window["route"], window["outcome"], window["prompt_tokens"], window["completion_tokens"], strict=True
    ):
        if outcome == "ok" and route is not None and (pt is not None or ct is not None):
            a = acc[route]
            a[0] += pt or 0
            a[1] += ct or 0
            a[2] += 1
    return {r: (a[0] / a[2], a[1] / a[2]) for r, a in acc.items()}


@dataclass(frozen=True)
class CostEstimates:
    """What an expected cost is estimated from: per-target failure rates and each route's mean
    logged tokens — all a stateless replay reads (:func:`.costs_columnar.cost_estimates`)."""

    failure: dict[str, float]
    means: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class Estimates(CostEstimates):
    """The window statistics a candidate's estimates are made from: per-target failure rates,
    each route's mean logged tokens and median latency, the median latency of each kind of
    hit (the medians: the fold's latencies). Computed once from the whole window, they can be
    given to each partition of a partitioned replay, whose estimates then equal the single
    replay's."""

    latency: dict[str, float]
    hit_ms: dict[str, float]


def estimates_of(window: Columns) -> Estimates:
    """:class:`Estimates` of a logged window (the columns they read: ESTIMATE_COLUMNS); a
    :class:`~.window.Window`'s from its columns (:func:`.costs_columnar.estimates_columnar`)."""
    from .window import Window

    if isinstance(window, Window):
        from .costs_columnar import estimates_columnar

        return estimates_columnar(window)
    from .cache_stage import HIT_KINDS

    samples = attempt_samples(window)
    failure = {t: len(s["failed"]) / (len(s["ok"]) + len(s["failed"])) for t, s in samples.items()}
    by: dict[str, list[float]] = {}
    hits: dict[str, list[float]] = {k: [] for k in HIT_KINDS}
    for route, outcome, lat, cache in zip(
        window["route"], window["outcome"], window["latency_ms"], window["cache"], strict=True
    ):
        if outcome == "ok" and lat is not None and route is not None:
            by.setdefault(route, []).append(lat)
        if cache in hits and lat:
            hits[cache].append(lat)
    latency = {r: _quantile(v, 0.5) or 0.0 for r, v in by.items()}
    hit_ms = {k: _quantile(v, 0.5) or 1.0 for k, v in hits.items()}
    return Estimates(failure, route_means(window), latency, hit_ms)


#: the columns :func:`estimates_of` reads
ESTIMATE_COLUMNS = ("route", "outcome", "latency_ms", "cache", "prompt_tokens", "completion_tokens", "attempts")


class CostModel:
    """Per-target failure rates from the logged attempts, for expected costs on a plan."""

    def __init__(self, policy: Policy, failure: dict[str, float]) -> None:
        self.failure = failure
        self.policy = policy
        self.unpriced: set[str] = set()
        self.unmeasured: set[str] = set()  # found while serving (the Python fold's record)
        self._estimates: tuple[Any, list[set[str]]] | None = None

    def estimated(self, estimate_of: Any, unmeasured: list[set[str]]) -> None:
        """Record what an estimate made ahead of the fold found unmeasured: ``estimate_of`` (int
        array, per request: its estimate's index into ``unmeasured``; -1: none). The compiled
        fold's inputs estimate every admitted request before the fold decides which are served
        upstream; :meth:`unmeasured_of` counts only those, as the Python fold does."""
        self._estimates = (estimate_of, unmeasured)

    def unmeasured_of(self, upstream: Any) -> set[str]:
        """The targets never attempted in the log that an estimate of a request served upstream
        (``upstream``: bool array per request) went through."""
        found = set(self.unmeasured)
        if self._estimates is not None:
            import numpy as np

            codes, sets = self._estimates
            for k in np.unique(codes[upstream & (codes >= 0)]).tolist():
                found |= sets[k]
        return found

    def tries(self, policy: Policy, route: str | None) -> int:
        """How many times the route tries each target (its retry attempts)."""
        spec = policy.routes.get(route) if route else None
        retry = getattr(spec, "retry", None)
        return int(getattr(retry, "attempts", 1) or 1)

    def expected(
        self, policy: Policy, route: str | None, plan: Sequence[str], pt: float, ct: float, cached: int | None = None
    ) -> float | None:
        """The expected cost of serving ``pt`` + ``ct`` tokens along ``plan`` (None: a target
        that may serve has no price)."""
        tries = self.tries(policy, route)
        reach, total = 1.0, 0.0
        for target in plan:
            if target not in self.failure:
                self.unmeasured.add(target)
            p = self.failure.get(target, 0.0) ** tries
            serve = reach * (1.0 - p)
            if serve > 0:
                c = cost_usd(policy, target, round(pt), round(ct), cached)
                if c is None:
                    self.unpriced.add(target)
                    return None
                total += serve * c
            reach *= p
        return total
