"""Costs and the candidate's estimate statistics over whole columns, equal to the scalar rules.

:func:`~llmgw_kernel.decisions.cost.cost_usd` (one answer's cost) and
:meth:`.costs.CostModel.expected` (the expected cost along a plan) stay the definitions. The
price of tokens is one function for both (:func:`~llmgw_kernel.decisions.cost.tokens_usd`,
numbers or arrays); the functions here feed it columns and apply the rest of the scalar rules'
float operations, in the same order, so every value is bit-identical to the scalar one
(tests/replay/test_costs_columnar.py holds them equal). The one step numpy does differently is
rounding: ``round(x, 9)`` rounds the exact decimal value of ``x``, ``np.round`` rounds
``x * 1e9`` after the multiplication has rounded; the two differ only when ``x * 1e9`` lies
within a few ulps of a half-integer, and those rows (almost never any) are rounded by Python's
``round`` (:func:`round9`).

:func:`estimates_columnar` is :func:`.costs.estimates_of` read from Arrow columns (no Python
object per row).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..decisions.cost import resolve_price, tokens_usd
from .costs import CostEstimates, Estimates
from .routing_estimates import attempt_arrays, quantile, tokens

if TYPE_CHECKING:
    from ..policy.model import Policy
    from .window import Window

_EXACT_BELOW = 2.0**52  # rint of a double below this is an exact integer


def round9(x: np.ndarray) -> np.ndarray:
    """``round(v, 9)`` of every value (NaN stays NaN), bit-identical to Python's ``round``. The
    test for a value next to a half-integer is written in place (5 float temporaries, not 11: a
    first call's fresh pages); a NaN compares False in it, so it is never sent to ``round``."""
    scaled = x * 1e9
    out = np.rint(scaled)
    out /= 1e9
    size = np.abs(scaled)
    frac = np.floor(scaled)
    np.subtract(scaled, frac, out=frac)
    frac -= 0.5
    np.abs(frac, out=frac)
    step = np.spacing(size)
    step *= 4
    risky = frac <= step
    risky |= size >= _EXACT_BELOW
    for i in np.flatnonzero(risky).tolist():
        out[i] = round(float(x[i]), 9)
    return out


def float_sum(values: np.ndarray) -> float | int:
    """``sum(values.tolist())`` bit for bit, without a Python float per value: Python (before
    3.12) adds floats one after another from 0, as ``cumsum`` does (``np.sum`` adds pairwise:
    not the same bits). An empty array sums to the int 0, as ``sum([])`` does."""
    if sys.version_info >= (3, 12) or values.dtype != np.float64:  # 3.12's sum compensates: its own bits
        return sum(values.tolist())  # type: ignore[no-any-return]
    if not len(values):
        return 0
    return float(np.cumsum(values)[-1]) + 0.0  # + 0.0: Python's 0 + -0.0 is 0.0


def cost_usd_columns(
    policy: Policy, target: str | None, prompt: np.ndarray, completion: np.ndarray, cached: np.ndarray | None = None
) -> np.ndarray | None:
    """:func:`~llmgw_kernel.decisions.cost.cost_usd` of one target for many answers: float64
    token arrays (NaN for NULL; ``cached`` None: no cached tokens). NaN where the scalar
    function returns None because both token counts are NULL; None when the target is unpriced
    (or no target)."""
    price = resolve_price(policy, target) if target else None
    if price is None:
        return None
    # NaN (NULL) as 0 — one isnan per column, a copy only when it has a NaN (token counts are
    # finite: no inf to clip, as nan_to_num would); fmax: a NULL cached count is 0, as max(0, 0)
    # after nan_to_num; no cached tokens: 0 (a scalar prices as a column of zeros does, bit for bit)
    p_nan, c_nan = np.isnan(prompt), np.isnan(completion)
    any_p, any_c = bool(p_nan.any()), bool(c_nan.any())
    p = np.where(p_nan, 0.0, prompt) if any_p else prompt
    c = 0.0 if cached is None else np.minimum(np.fmax(cached, 0.0), p)
    out = round9(tokens_usd(price, p, c, np.where(c_nan, 0.0, completion) if any_c else completion))
    if any_p and any_c:
        out[p_nan & c_nan] = np.nan
    return out


class ExpectedCosts:
    """:meth:`.costs.CostModel.expected` for the requests of one (route, plan) at once, with
    the same record of unpriced and unmeasured targets."""

    def __init__(self, policy: Policy, failure: dict[str, float]) -> None:
        self.policy, self.failure = policy, failure
        self.unpriced: set[str] = set()
        self.unmeasured: set[str] = set()

    def expected(self, tries: int, plan: Sequence[str], pt: np.ndarray, ct: np.ndarray) -> np.ndarray | None:
        """The expected cost of serving ``pt`` + ``ct`` tokens (float64) along ``plan`` (None:
        a target that may serve has no price — the scalar model returns None for every row)."""
        pt_i, ct_i = np.rint(pt), np.rint(ct)  # round(): half to even, as np.rint
        reach = 1.0
        total = np.zeros(len(pt), np.float64)
        for target in plan:
            if target not in self.failure:
                self.unmeasured.add(target)
            p = self.failure.get(target, 0.0) ** tries
            serve = reach * (1.0 - p)
            if serve > 0:
                c = cost_usd_columns(self.policy, target, pt_i, ct_i)
                if c is None:
                    self.unpriced.add(target)
                    return None
                total = total + serve * c
            reach *= p
        return total


def cost_estimates(window: Window) -> CostEstimates:
    """The failure rates and route means of :func:`estimates_columnar` without its medians:
    what a stateless replay's expected costs read (the same figures)."""
    return _cost_estimates(window, *_routed_ok(window), shared=True)


def estimates_columnar(window: Window) -> Estimates:
    """:func:`.costs.estimates_of` of a window, from its Arrow columns (the same figures)."""
    from .cache_stage import HIT_KINDS

    route_codes, routes, ok = _routed_ok(window)
    costs = _cost_estimates(window, route_codes, routes, ok)
    lat, lat_valid = window.numpy("latency_ms"), window.valid("latency_ms")
    timed = np.flatnonzero(ok & lat_valid)
    timed_route, timed_lat = route_codes[timed], lat[timed]
    latency = {routes[r]: quantile(timed_lat[timed_route == r], 0.5) or 0.0 for r in first_seen(timed_route)}
    nonzero = lat_valid & (np.abs(lat) > 0)  # NULL, NaN and 0 ms left out
    hit_ms = {kind: quantile(lat[_equals(window, "cache", kind) & nonzero], 0.5) or 1.0 for kind in HIT_KINDS}
    return Estimates(costs.failure, costs.means, latency, hit_ms)


def _routed_ok(window: Window) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Each row's route code, the routes, and the rows that succeeded on a route."""
    route_codes, routes = window.codes("route")
    return route_codes, routes, _equals(window, "outcome", "ok") & (route_codes >= 0)


def _cost_estimates(
    window: Window, route_codes: np.ndarray, routes: list[str], ok: np.ndarray, shared: bool = False
) -> CostEstimates:
    """The failure rates and route means; ``shared``: the token counts with NULL as 0 read from
    the window's shared copy (:func:`.routing_estimates.tokens`, which a stateless replay's
    expected costs and routing summary read too) instead of made for the rows (the same values)."""
    arrays = attempt_arrays(window)
    failure = {t: len(s["failed"]) / (len(s["ok"]) + len(s["failed"])) for t, s in arrays.items()}
    pt, ct = window.numpy("prompt_tokens"), window.numpy("completion_tokens")
    pt_nan, ct_nan = np.isnan(pt), np.isnan(ct)
    rows = np.flatnonzero(ok & ~(pt_nan & ct_nan))
    codes = route_codes[rows]
    seen = first_seen(codes)
    if not seen:
        return CostEstimates(failure, {})
    # token counts are whole numbers (BIGINT): their float64 sums are exact in any order, so a
    # sum per route in one pass equals each route's own sum
    size = max(seen) + 1
    n = np.bincount(codes, minlength=size)
    if shared:
        (pt0, _), (ct0, _) = tokens(window, "prompt_tokens"), tokens(window, "completion_tokens")
        prompt = np.bincount(codes, pt0[rows], minlength=size)
        completion = np.bincount(codes, ct0[rows], minlength=size)
    else:  # the fold's estimates: no window-long copy held while it folds
        prompt = np.bincount(codes, np.where(pt_nan[rows], 0.0, pt[rows]), minlength=size)
        completion = np.bincount(codes, np.where(ct_nan[rows], 0.0, ct[rows]), minlength=size)
    means = {routes[r]: (float(prompt[r]) / float(n[r]), float(completion[r]) / float(n[r])) for r in seen}
    return CostEstimates(failure, means)


def _equals(window: Window, name: str, value: str) -> np.ndarray:
    codes, values = window.codes(name)
    return codes == values.index(value) if value in values else np.zeros(len(codes), bool)


def first_seen(codes: np.ndarray) -> list[int]:
    """The distinct non-negative values of ``codes`` (small integers) in order of first
    appearance, without sorting the rows (a minimum per value, then the few values sorted)."""
    codes = codes[codes >= 0]
    if not codes.size:
        return []
    first = np.full(int(codes.max()) + 1, len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))
    present = np.flatnonzero(first < len(codes))
    return present[np.argsort(first[present], kind="stable")].tolist()  # type: ignore[no-any-return]
