"""What a candidate routing would have cost, how fast and how reliable — estimated from the log.

Routing replay knows *which* targets a candidate tries for each logged request; what those
targets would have done is estimated from what each target did in the log:

- **per-target figures** from every logged attempt at that target (``attempts`` column;
  skipped/unavailable targets are not attempts): attempts, failure rate, latency of
  successful attempts (mean, p50, p95) and of failed ones (mean);
- **failure of a target** for one request = its per-attempt failure rate raised to the
  route's ``retry.attempts`` (independent failures assumed); the request falls back to the
  next target with that probability. ``fallback_rate`` is the mean probability that the
  first target fails; ``error_rate`` the mean probability that every target fails;
- **latency**: each request is simulated once along its plan, with draws hashed from the
  request id (deterministic), sampling the logged attempt latencies; p50/p95 are over those
  simulated requests, and ``latency_ms_mean`` is the exact expectation. Upstream time only:
  gateway overhead (~1 ms) is left out;
- **cost** = logged prompt/completion tokens x the price of the target expected to serve
  (weighted by the probability that each target serves). Prices come from the candidate's
  ``pricing``; a target without a price makes ``cost_usd`` unknown (None) and is listed in
  ``unpriced_targets`` — never counted as 0. Token counts are the logged ones, i.e. as
  tokenised by the target that really served (another model may tokenise differently).

Targets the log has never attempted are listed in ``unmeasured_targets`` (treated as never
failing, with unknown latency).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..decisions.cost import resolve_price
from ..decisions.routing import draw

if TYPE_CHECKING:
    from ..policy.model import Policy

Columns = dict[str, list[Any]]


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (pos - lo), 3)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def attempt_samples(window: Columns) -> dict[str, dict[str, list[float]]]:
    """target id -> {"ok": latencies of successful attempts, "failed": latencies of failed ones}."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"ok": [], "failed": []})
    for attempts in window.get("attempts") or ():
        for a in attempts or ():
            error = a.get("error")
            if error is not None and str(error).startswith("skipped"):
                continue
            bucket = "ok" if error is None else "failed"
            out[a["target"]][bucket].append(float(a.get("latency_ms") or 0.0))
    return dict(out)


def target_table(samples: dict[str, dict[str, list[float]]], policy: Policy) -> dict[str, dict[str, Any]]:
    """The per-target figures the estimates are made from."""
    table = {}
    for target, s in sorted(samples.items()):
        n = len(s["ok"]) + len(s["failed"])
        price = resolve_price(policy, target)
        table[target] = {
            "attempts": n,
            "failure_rate": round(len(s["failed"]) / n, 6) if n else None,
            "latency_ms_mean": _mean(s["ok"]),
            "latency_ms_p50": _quantile(s["ok"], 0.5),
            "latency_ms_p95": _quantile(s["ok"], 0.95),
            "failed_latency_ms_mean": _mean(s["failed"]),
            "input_per_1m": price.input_per_1m if price else None,
            "output_per_1m": price.output_per_1m if price else None,
            "price_source": price.source if price else "none",
        }
    return table


def _tries(policy: Policy, route: str | None) -> int:
    spec = policy.routes.get(route) if route else None
    retry = getattr(spec, "retry", None)
    return int(getattr(retry, "attempts", 1) or 1)


def estimate(policy: Policy, window: Columns, plans: list[list[str] | None]) -> dict[str, Any]:
    """The candidate's estimated cost, latency, error and fallback rates over the window."""
    samples = attempt_samples(window)
    rate = {t: len(s["failed"]) / (len(s["ok"]) + len(s["failed"])) for t, s in samples.items()}
    mean_ok = {t: sum(s["ok"]) / len(s["ok"]) for t, s in samples.items() if s["ok"]}
    mean_failed = {t: sum(s["failed"]) / len(s["failed"]) for t, s in samples.items() if s["failed"]}
    unpriced: set[str] = set()
    unmeasured: set[str] = set()
    cost = 0.0
    expected_lat: list[float] = []
    simulated: list[float] = []
    fallback = errors = 0.0
    routed = 0
    for rid, route, plan, pt, ct in zip(
        window["request_id"], window["route"], plans, window["prompt_tokens"], window["completion_tokens"], strict=True
    ):
        if not plan:
            continue
        routed += 1
        tries = _tries(policy, route)
        reach, lat, sim, sim_done, lat_known = 1.0, 0.0, 0.0, False, True
        for k, target in enumerate(plan):
            if target not in samples:
                unmeasured.add(target)
            p = rate.get(target, 0.0) ** tries
            if k == 0:
                fallback += p
            serve = reach * (1 - p)
            if serve > 0 and (pt or ct):
                price = resolve_price(policy, target)
                if price is None:
                    unpriced.add(target)
                else:
                    cost += serve * ((pt or 0) * price.input_per_1m + (ct or 0) * price.output_per_1m) / 1e6
            ok_ms, failed_ms = mean_ok.get(target), mean_failed.get(target, 0.0)
            if ok_ms is None and serve > 0:
                lat_known = False
            lat += serve * (ok_ms or 0.0) + reach * p * tries * failed_ms
            if not sim_done:
                s = samples.get(target)
                fails = draw("sim-fail", f"{rid}:{k}") < p
                pool = (s["failed"] if fails else s["ok"]) if s else []
                if pool:
                    sim += pool[int(draw("sim-lat", f"{rid}:{k}") * len(pool))] * (tries if fails else 1)
                elif not fails:
                    lat_known = False
                sim_done = not fails
            reach *= p
        errors += reach
        if lat_known:
            expected_lat.append(lat)
            simulated.append(sim)
    n = routed or 1
    return {
        "requests_estimated": routed,
        "cost_usd": None if unpriced else round(cost, 6),
        "cost_usd_priced_part": round(cost, 6),
        "unpriced_targets": sorted(unpriced),
        "error_rate": round(errors / n, 6) if routed else None,
        "fallback_rate": round(fallback / n, 6) if routed else None,
        "latency_ms_mean": _mean(expected_lat),
        "latency_ms_p50": _quantile(simulated, 0.5),
        "latency_ms_p95": _quantile(simulated, 0.95),
        "unmeasured_targets": sorted(unmeasured),
        "targets": target_table(samples, policy),
    }


def logged_cost(policy: Policy, window: Columns) -> dict[str, Any]:
    """What the logged traffic cost at the candidate's prices (the baseline to compare with)."""
    cost, unpriced = 0.0, set()
    for target, pt, ct in zip(window["target"], window["prompt_tokens"], window["completion_tokens"], strict=True):
        if not target or not (pt or ct):
            continue
        price = resolve_price(policy, target)
        if price is None:
            unpriced.add(target)
            continue
        cost += ((pt or 0) * price.input_per_1m + (ct or 0) * price.output_per_1m) / 1e6
    return {"cost_usd": None if unpriced else round(cost, 6), "unpriced_targets": sorted(unpriced)}
