"""The routing estimates' latency simulation walks every simulated request along its plan at once
(``routing_estimates._simulate``, all groups stepping together, one target position at a time).
Each request's walk must be the one it would take alone: the values the quantiles are taken of
equal, as a multiset and bit for bit, a walk written one request at a time here — with a
systematic sample, streams cut after their first byte, retries, a target that always fails, one
that never fails, one that never served (unknown latency: its group left out) and one the log
never attempted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.decisions.routing import draw
from llmgw_kernel.replay import routing_estimates as est

TARGETS = ("a/x", "b/y", "c/z", "d/w", "e/v")  # d/w never served, e/v never attempted


def policy() -> Any:
    providers = {p: {"kind": "openai", "base_url": "http://127.0.0.1:9"} for p in "abcde"}

    def route(targets: list[str], attempts: int) -> dict[str, Any]:
        return {"targets": [{"provider": t[0], "model": t[2]} for t in targets], "retry": {"attempts": attempts}}

    return load_policy(
        {
            "providers": providers,
            "routes": {"r1": route(["a/x", "b/y"], 1), "r2": route(["c/z", "a/x", "b/y"], 2),
                       "r3": route(["d/w", "b/y"], 1), "r4": route(["e/v", "a/x"], 1)},
        }
    )  # fmt: skip


def _attempt(target: str, i: int) -> dict[str, Any]:
    """Attempt ``i`` at ``target``: a/x fails 1 in 3 (every 7th failure a cut stream), b/y never
    fails, c/z always fails, d/w always fails."""
    lat = float(5 + (i * 37) % 400) + i / 8
    if target == "b/y" or (target == "a/x" and i % 3):
        return {"target": target, "status": 200, "latency_ms": lat, "error": None}
    cut = target == "a/x" and i % 7 == 0
    error = "upstream_error after first byte: reset" if cut else "upstream_error: 503"
    return {"target": target, "status": 503, "latency_ms": lat, "error": error}


def window(n: int) -> tuple[dict[str, list[Any]], list[tuple[str, ...] | None]]:
    """``n`` requests over the four routes (every 11th not routed), their plans the routes' targets."""
    plans = {"r1": ("a/x", "b/y"), "r2": ("c/z", "a/x", "b/y"), "r3": ("d/w", "b/y"), "r4": ("e/v", "a/x")}
    routes = [("r1", "r2", "r3", "r4")[(i * 5) % 4] for i in range(n)]
    attempts = [[_attempt(plans[r][0] if r != "r4" else "a/x", i), _attempt("b/y", i)] for i, r in enumerate(routes)]
    cols = {
        "request_id": [f"req-{i:05d}-{'x' * (i % 3)}" for i in range(n)],  # ids of several lengths
        "route": routes,
        "stream": [i % 2 == 0 for i in range(n)],
        "prompt_tokens": [10 + i % 5 for i in range(n)],
        "completion_tokens": [3] * n,
        "attempts": attempts,
    }
    return cols, [None if i % 11 == 0 else plans[r] for i, r in enumerate(routes)]


def walk_alone(samples: est.Samples, rid: str, plan: tuple[str, ...], tries: int, stream: bool) -> float | None:
    """One request's simulated latency, walked alone (None: its latency is unknown)."""
    sim, known, can_reach, reach = 0.0, True, True, 1.0
    going = True
    for k, target in enumerate(plan):
        s = samples.get(target)
        p, cut = est._outcomes(s, tries, stream)
        serve = reach * (1 - p - cut)
        if (s is None or not len(s["ok"])) and (serve > 0 or (can_reach and p < 1)):
            known = False
        if going:
            key = f"{rid}:{k}"
            u = draw("sim-fail", key) if cut or 0.0 < p < 1.0 else None
            fails = u < p if u is not None else p >= 1.0
            cuts = bool(cut) and u is not None and p <= u < p + cut
            name, times = ("failed", tries) if fails else ("cut", 1) if cuts else ("ok", 1)
            pool = s[name] if s is not None else None
            if pool is not None and len(pool):
                sim += pool[int(draw("sim-lat", key) * len(pool))] * times
            going = fails
        can_reach = can_reach and p > 0
        reach *= p
    return sim if known else None


@pytest.mark.parametrize("simulated_max", [10_000, 97], ids=["every-request", "systematic-sample"])
def test_the_simulation_walks_each_request_as_alone(simulated_max: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(est, "SIMULATED_MAX", simulated_max)
    pol, (cols, plans) = policy(), window(1200)
    taken: list[np.ndarray] = []
    real = est.quantiles
    monkeypatch.setattr(est, "quantiles", lambda values, qs: taken.append(values.copy()) or real(values, qs))
    got = est.estimate(pol, cols, plans)
    samples = est.attempt_arrays(cols)
    assert len(samples["a/x"]["cut"]) and not len(samples["d/w"]["ok"]) and "e/v" not in samples
    routed = [i for i, p in enumerate(plans) if p]
    want = []
    for j in est.simulated_positions(len(routed)).tolist():
        i = routed[j]
        tries = 2 if cols["route"][i] == "r2" else 1
        lat = walk_alone(samples, cols["request_id"][i], plans[i], tries, cols["stream"][i])  # type: ignore[arg-type]
        if lat is not None:
            want.append(lat)
    simulated = taken[0]  # the first quantiles taken: the simulated requests' (then each target's)
    assert len(want) > 50 and len(simulated) == len(want)
    assert np.sort(simulated).tobytes() == np.sort(np.asarray(want, np.float64)).tobytes()
    assert (got["latency_ms_p50"], got["latency_ms_p95"]) == tuple(real(np.asarray(want), (0.5, 0.95)))
    assert got["unmeasured_targets"] == ["e/v"]
