"""Realistic synthetic traffic, served through a real ``llmgw serve``: several teams with their
own keys, users, route mix and time-of-day shape; prompts that repeat and paraphrase; targets
that differ in price, latency and failure rate.

    llmgw traffic --profile demo --data-dir llmgw-demo-data -n 600

The team model (:class:`Team`: volume, weekend share, hours of
the day, routes, token sizes, keys, users) is the one :mod:`llmgw_kernel.spend_history` writes a
month of history with; the prompt stream (Zipf-popular intents, exact repeats, paraphrases,
hard negatives) is :func:`llmgw_kernel.cache_traffic.plan_traffic`'s. What this module adds is
serving them together:

- **one compressed day**: each request gets an hour drawn from its team's shape and the plan
  is sent in hour order, so the log shows the day's mix of teams changing over the run (a
  nightly batch team first, business hours in the middle, ...);
- **targets that behave differently**, offline: the built-in ``demo`` provider's
  ``slow-<N>ms`` / ``flaky-<P>pct`` knobs stand in for a cheap fast model, a dear one and a
  slow, flaky reasoning model; the profile's ``pricing`` gives them real prices, so cost,
  latency and error what-ifs have something to find;
- **keys**: in open mode every team's requests present one of its keys (``Bearer
  sk-synthetic-<team>-<k>``), so ``key_id`` differs per key without any admin setup.

The profile's policy is written to ``<data-dir>/traffic-<profile>.yaml`` and served; replaying
the log against it reproduces every decision. Deterministic given ``seed`` (the plan; the log's
request ids and times are the server's).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

_BUSINESS = (0, 0, 0, 0, 0, 0, 0, 1, 4, 8, 9, 9, 7, 8, 9, 8, 7, 4, 2, 1, 0, 0, 0, 0)
_ROUND_THE_CLOCK = (2, 1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 7, 7, 6, 6, 5, 4, 3, 2)
_NIGHTLY = (2, 9, 9, 8, 6, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1)


@dataclass(frozen=True)
class Team:
    """How one team uses the gateway. Volumes are mean requests per day (Poisson)."""

    name: str
    per_weekday: float
    weekend_share: float  # weekend volume / weekday volume
    hours: tuple[float, ...]  # 24 relative weights, in the history's time zone (UTC)
    routes: Mapping[str, float]  # route -> share of the team's requests
    prompt_tokens: int  # median (log-normal, sigma 0.6)
    completion_tokens: int  # median (log-normal, sigma 0.5)
    keys: int = 2
    users: int = 4
    growth_per_day: float = 0.0  # volume x (1 + growth) ** day
    spike: tuple[int, int, float] | None = None  # (first day, last day, volume factor), days from 0

    def mean_on(self, day: int, weekend: bool) -> float:
        """Mean requests on ``day`` (days from the traffic's first day): the weekday volume,
        times the weekend share on a weekend, the growth since day 0 and the spike if in it."""
        mean = self.per_weekday * (self.weekend_share if weekend else 1.0) * (1 + self.growth_per_day) ** day
        if self.spike is not None and self.spike[0] <= day <= self.spike[1]:
            mean *= self.spike[2]
        return mean


TEAMS: tuple[Team, ...] = (
    Team("search", 90, 0.6, _ROUND_THE_CLOCK, {"chat": 0.5, "assistant": 0.5}, 6000, 300, keys=3, users=6),
    Team("support", 45, 0.15, _BUSINESS, {"assistant": 0.8, "chat": 0.2}, 6000, 500, spike=(11, 15, 5.0)),
    Team("analytics", 12, 0.5, _NIGHTLY, {"analyst": 0.9, "chat": 0.1}, 8000, 900, keys=1, users=2,
         growth_per_day=0.04),
    Team("research", 8, 0.1, _BUSINESS, {"analyst": 0.5, "assistant": 0.5}, 5000, 1200, keys=2, users=3),
)  # fmt: skip


@dataclass(frozen=True)
class TargetSpec:
    """One upstream of the profile, served offline by the ``demo`` provider: its model name
    carries the behaviour knobs (a fixed delay, a failure rate), the profile's pricing its price."""

    name: str
    slow_ms: int  # the demo provider's delay before it answers
    flaky_pct: int  # share of attempts that fail upstream
    input_per_1m: float  # USD per 1M prompt tokens
    output_per_1m: float  # USD per 1M completion tokens

    @property
    def model(self) -> str:
        return f"demo-{self.name}-slow-{self.slow_ms}ms-flaky-{self.flaky_pct}pct"

    @property
    def target(self) -> str:
        """The ``provider/model`` name the log records."""
        return f"demo/{self.model}"


#: a cheap fast model, a dear one, a slow and flaky reasoning model
TARGETS: dict[str, TargetSpec] = {
    "mini": TargetSpec("mini", 15, 1, 0.15, 0.60),
    "large": TargetSpec("large", 60, 2, 2.50, 10.00),
    "reasoner": TargetSpec("reasoner", 150, 6, 3.00, 15.00),
}
#: route -> [(target, weight)]: the first target is drawn by weight (weight 0: a fallback only)
ROUTES: dict[str, list[tuple[str, int]]] = {
    "chat": [("mini", 80), ("large", 20)],
    "assistant": [("large", 1), ("mini", 0)],
    "analyst": [("reasoner", 1), ("large", 0)],
}


@dataclass(frozen=True)
class Profile:
    name: str
    teams: tuple[Team, ...] = TEAMS
    stream_share: float = 0.15
    repeat_share: float = 0.3
    key_zipf: float = 0.0  # a team's k-th key sends in proportion to 1 / (k + 1) ** key_zipf (0: evenly)


PROFILES = {"demo": Profile("demo")}


@dataclass(frozen=True)
class Planned:
    hour: float  # within the compressed day (the send order)
    team: str
    key: str
    user: str
    route: str
    prompt: str
    stream: bool
    max_tokens: int


def profile_policy(profile: Profile) -> dict[str, Any]:
    """The policy the profile is served with (the demo provider; real prices)."""
    routes = {
        route: {"targets": [{"provider": "demo", "model": TARGETS[t].model, "weight": w} for t, w in targets]}
        for route, targets in ROUTES.items()
    }
    return {
        "description": f"synthetic traffic profile {profile.name!r} (llmgw_kernel.traffic_profile)",
        "providers": {"demo": {"kind": "demo"}},
        "routes": routes,
        "pricing": {
            t.model: {"input_per_1m": t.input_per_1m, "output_per_1m": t.output_per_1m} for t in TARGETS.values()
        },
        "log": {"bodies": "full", "flush_ms": 200},
    }


def plan(profile: Profile, n: int, seed: int = 0, routes: Sequence[str] | None = None) -> list[Planned]:
    """``n`` requests of one compressed day, in send order (a pure function of its arguments).

    ``routes``: send to these routes instead of the profile's (a policy of one's own): a
    request keeps its team's route when it is one of them, else takes one of them by a hash of
    the seed and its index; the first request of the day goes to the first route, the second
    to the second, ..., so every route named gets traffic."""
    from .cache_traffic import plan_traffic

    teams = {t.name: t for t in profile.teams}
    stream = plan_traffic(n, seed=seed, stream_share=profile.stream_share, repeat_share=profile.repeat_share,
                          teams={t.name: t.per_weekday for t in profile.teams})  # fmt: skip
    rng = random.Random(f"traffic-profile:{profile.name}:{seed}")
    out = []
    for i, p in enumerate(stream):
        team = teams[p.team]
        hour = rng.choices(range(24), team.hours)[0] + rng.random()
        route = rng.choices(list(team.routes), list(team.routes.values()))[0]
        if routes and route not in routes:  # a hash, not the rng: the rest of the plan stays as it was
            route = routes[int(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=4).hexdigest(), 16) % len(routes)]
        out.append(Planned(
            hour, team.name, f"sk-synthetic-{team.name}-{_key(rng, team.keys, profile.key_zipf)}",
            f"{team.name}-user-{rng.randrange(team.users)}", route, p.prompt, p.stream,
            max(16, int(rng.lognormvariate(0, 0.5) * team.completion_tokens)),
        ))  # fmt: skip
    out.sort(key=lambda r: r.hour)
    for i, route in enumerate((routes or ())[: len(out)]):
        out[i] = replace(out[i], route=route)
    return out


def _key(rng: random.Random, keys: int, zipf: float) -> int:
    """One of a team's keys, by :attr:`Profile.key_zipf` (evenly: one ``randrange``, as always)."""
    if not zipf:
        return rng.randrange(keys)
    return rng.choices(range(keys), [1 / (k + 1) ** zipf for k in range(keys)])[0]


def serve_profile(
    profile: Profile | str,
    data_dir: str | os.PathLike[str],
    n: int = 600,
    seed: int = 0,
    port: int | None = None,
    url: str | None = None,
    concurrency: int = 4,
) -> Any:
    """Serve ``plan(profile, n, seed)`` through a real server (started on ``port``, else
    ``$LLMGW_TRAFFIC_PORT``, else a free one; or the running one at ``url``, which must serve
    :func:`profile_policy`). Returns the :class:`~llmgw_kernel.traffic.TrafficReport`, with
    ``by_team`` request counts."""
    from .traffic import TrafficReport, started_server

    prof = PROFILES[profile] if isinstance(profile, str) else profile
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    policy_path = root / f"traffic-{prof.name}.yaml"
    policy_path.write_text(yaml.safe_dump(profile_policy(prof), sort_keys=False))
    report = TrafficReport(n, 0, 0, root)
    with started_server(policy_path, root, port, url) as base:
        send_plan(base, plan(prof, n, seed), report, concurrency=concurrency)
    return report


def send_plan(
    base_url: str, planned: Sequence[Planned], report: Any, api_key: str | None = None, concurrency: int = 1
) -> None:
    """Send ``planned`` to the server at ``base_url`` as chat completions, counting outcomes in
    ``report`` (a :class:`~llmgw_kernel.traffic.TrafficReport`). Each request presents its
    team's synthetic key (open mode: ``key_id`` differs per key), or ``api_key`` when given (a
    virtual key, once the gateway enforces keys)."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=60) as client, ThreadPoolExecutor(concurrency) as pool:
        outcomes = pool.map(lambda p: _send(client, p, api_key or p.key), planned)
        for p, outcome in zip(planned, outcomes, strict=True):
            report.by_team[p.team] += 1
            if isinstance(outcome, tuple):
                report.record_failure(*outcome)
            else:
                report.ok += 1


def _send(client: Any, p: Planned, key: str) -> tuple[str, str] | None:
    import httpx

    from .traffic import failure_of

    body: dict[str, Any] = {
        "model": p.route, "messages": [{"role": "user", "content": p.prompt}], "max_tokens": p.max_tokens,
        "user": p.user, "metadata": {"team": p.team}, "stream": p.stream,
    }  # fmt: skip
    try:
        r = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        return f"no response ({type(exc).__name__})", str(exc)
    return None if r.status_code == 200 else failure_of(r)


__all__ = ["PROFILES", "Planned", "Profile", "plan", "profile_policy", "send_plan", "serve_profile"]
