"""The traffic profile (:mod:`llmgw_kernel.traffic_profile`) drawn a million requests at a time.

:func:`llmgw_kernel.traffic_profile.plan` sends a few hundred requests through a real server;
the benchmarks and the sweep tests write logs of up to a million rows directly, and need the
same model drawn fast. :func:`draw` makes every choice with vectorised numpy draws from the
profile's distributions, deterministic from a seed:

- **arrival times** from the teams' daily and weekly shapes: each hour's rate is the sum over
  teams of :meth:`~llmgw_kernel.traffic_profile.Team.mean_on` (weekday volume, weekend share,
  growth, spike) spread over the team's ``hours``, scaled so that the mean over a week is
  ``rate_per_s``; arrivals are a Poisson process with that rate (inverse transform of the
  cumulative rate), so business hours are busy, nights quiet, weekends lighter;
- **the team** of a request from the teams' shares of its hour (a nightly team at night);
- **key, user, route, prompt and completion tokens** from that team's keys (evenly, or Zipf by
  the profile's ``key_zipf``), users, route mix and log-normal token sizes (sigma 0.6 and 0.5,
  as :mod:`llmgw_kernel.spend_history`);
- **prompts**: intents with Zipf popularity, each with :data:`PHRASINGS` phrasings
  (:func:`prompt_text`); with the profile's ``repeat_share`` a request uses the intent's first
  phrasing, else any: popular intents recur word for word (exact-cache hits) and in other words
  (paraphrases, for the semantic cache); the last phrasing of an intent is a negation (a hard
  negative the semantic cache's verification has to reject).

A consumer with a policy of its own maps the profile onto its routes and its scale with
:func:`for_policy` (route splits, more keys and users per team).

>>> from llmgw_kernel.traffic_profile import PROFILES
>>> a = draw(PROFILES["demo"], 1000, seed=1)
>>> bool((a.ts[1:] >= a.ts[:-1]).all()) and len(a.team) == 1000
True
>>> prompt_text(3, 0) != prompt_text(3, 1) != prompt_text(4, 1)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .traffic_profile import Profile

WEEK_START = 1_793_606_400.0  # 2026-11-02 08:00 UTC, a Monday morning
_WORDS = (
    "invoice refund shipping warranty battery screen printer router password account login upload export "
    "import calendar meeting report budget forecast contract license subscription discount coupon delivery "
    "tracking return exchange size colour fabric laptop phone tablet charger cable adapter speaker camera "
    "lens tripod backpack jacket shoe sock glove scarf recipe oven flour sugar yeast butter cheese garden "
    "tomato basil soil compost hiking trail tent stove lantern river fishing bait kayak paddle helmet"
).split()
_TEMPLATES = (
    "how do I {w}?",
    "what is the best way to {w}?",
    "please explain how to {w}",
    "can you tell me how to {w}",
    "quick question: how to {w}",
    "why can I not {w}?",  # a negation: verification rejects it against the other phrasings
)
PHRASINGS = len(_TEMPLATES)
_TRIPLES = len(_WORDS) * (len(_WORDS) - 1) * (len(_WORDS) - 2)
_STRIDE = 7919  # prime, coprime with _TRIPLES: intent -> word triple is one-to-one below _TRIPLES


def prompt_text(intent: int, phrasing: int) -> str:
    """The text of one phrasing of one intent: three distinct words per intent (a permutation of
    all word triples, so two intents below ~700k never share theirs), one template per phrasing."""
    k = (intent * _STRIDE + 17) % _TRIPLES
    words = list(_WORDS)
    picked = []
    for size in (len(words), len(words) - 1, len(words) - 2):
        picked.append(words.pop(k % size))
        k //= size
    return _TEMPLATES[phrasing].format(w=f"{picked[0]} the {picked[1]} {picked[2]}")


@dataclass(frozen=True)
class Drawn:
    """``n`` requests of a profile, one array entry per request, in time order."""

    teams: tuple[str, ...]  # index -> team name (the profile's order)
    routes: tuple[str, ...]  # index -> route name (first seen in the teams' mixes)
    ts: np.ndarray  # float64 epoch seconds, ascending
    team: np.ndarray  # index into teams
    key: np.ndarray  # the team's key number k (sk-synthetic-<team>-<k>)
    user: np.ndarray  # the team's user number u (<team>-user-<u>)
    route: np.ndarray  # index into routes
    intent: np.ndarray  # Zipf-popular intent number (rank 0 the most popular)
    phrasing: np.ndarray  # 0 .. PHRASINGS - 1 (see prompt_text)
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray


def draw(
    profile: Profile,
    n: int,
    seed: int = 0,
    start: float = WEEK_START,
    rate_per_s: float = 60.0,
    intents: int = 20_000,
    zipf_s: float = 1.05,
) -> Drawn:
    """``n`` requests of ``profile`` from ``start`` at a weekly mean of ``rate_per_s`` (a pure
    function of its arguments): see the module's docstring for each draw."""
    rng = np.random.default_rng([seed, n, 0x7A11C])
    teams = profile.teams
    ts, bucket, rates = _arrivals(profile, n, rng, start, rate_per_s)
    team = _pick(rates[bucket], rng.random(n))
    routes = tuple(dict.fromkeys(r for t in teams for r in t.routes))
    mix = np.array([[t.routes.get(r, 0.0) for r in routes] for t in teams], dtype=float)
    route = _pick(mix[team], rng.random(n))
    key = _keys(profile, team, rng.random(n))
    users = np.array([t.users for t in teams])[team]
    user = np.minimum((rng.random(n) * users).astype(np.int64), users - 1)
    popularity = 1.0 / np.arange(1, intents + 1) ** zipf_s
    intent = _pick(np.broadcast_to(popularity, (1, intents)), rng.random(n))
    any_phrasing = rng.integers(0, PHRASINGS, n)
    phrasing = np.where(rng.random(n) < profile.repeat_share, 0, any_phrasing)
    log_p = np.log([t.prompt_tokens for t in teams])[team]
    log_c = np.log([t.completion_tokens for t in teams])[team]
    prompt_tokens = np.maximum(20, np.exp(log_p + 0.6 * rng.standard_normal(n))).astype(np.int64)
    completion_tokens = np.maximum(1, np.exp(log_c + 0.5 * rng.standard_normal(n))).astype(np.int64)
    return Drawn(tuple(t.name for t in teams), routes, ts, team, key, user, route, intent, phrasing,
                 prompt_tokens, completion_tokens)  # fmt: skip


def _keys(profile: Profile, team: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each request's key number within its team, by the profile's ``key_zipf`` (0: evenly)."""
    most = max(t.keys for t in profile.teams)
    weights = np.array([[1 / (k + 1) ** profile.key_zipf if k < t.keys else 0.0 for k in range(most)]
                        for t in profile.teams])  # fmt: skip
    return _pick(weights[team], u)


def _pick(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row ``i`` of ``weights`` (or its only row) drawn at uniform ``u[i]``: the first column
    whose cumulative share exceeds it."""
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    if len(cum) == 1:
        return np.minimum(np.searchsorted(cum[0], u, side="right"), cum.shape[1] - 1)
    return np.minimum((cum <= u[:, None]).sum(axis=1), cum.shape[1] - 1)


def _arrivals(
    profile: Profile, n: int, rng: np.random.Generator, start: float, rate_per_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival times, each arrival's hour index from the hour holding ``start``, the teams'
    rate per hour: hours x teams, requests per hour at the scaled volume)."""
    week = sum(5 * t.mean_on(0, False) + 2 * t.mean_on(0, True) for t in profile.teams) / (7 * 24)
    scale = rate_per_s * 3600 / week
    first_hour = math.floor(start / 3600)
    hours = max(48, math.ceil(2 * n / (rate_per_s * 3600)) + 48)
    while True:
        rates = _hourly_rates(profile, first_hour, hours) * scale
        cum = np.concatenate([[0.0], np.cumsum(rates.sum(axis=1))])
        edges = (first_hour + np.arange(hours + 1)) * 3600.0
        at_start = float(np.interp(start, edges, cum))
        if cum[-1] - at_start > 1.2 * n + 100:
            break
        hours *= 2
    arrivals = at_start + np.cumsum(rng.exponential(1.0, n))
    ts = np.interp(arrivals, cum, edges)
    bucket = np.minimum(np.searchsorted(cum, arrivals, side="right") - 1, hours - 1)
    return ts, bucket, rates


def _hourly_rates(profile: Profile, first_hour: int, hours: int) -> np.ndarray:
    """hours x teams: each team's mean requests in each hour (unscaled), from the team's daily
    volume on that day (weekday or weekend, growth, spike: days counted from the first) and its
    share of the day in that hour."""
    absolute = first_hour + np.arange(hours)
    day = absolute // 24 - first_hour // 24
    weekend = ((absolute // 24 + 3) % 7) >= 5  # 1970-01-01 was a Thursday (weekday 3)
    out = np.empty((hours, len(profile.teams)))
    for j, team in enumerate(profile.teams):
        shape = np.asarray(team.hours, dtype=float) / sum(team.hours)
        daily = np.array([team.mean_on(int(d), bool(w)) for d, w in zip(day, weekend, strict=True)])
        out[:, j] = daily * shape[absolute % 24]
    return out


def for_policy(
    profile: Profile,
    name: str,
    routes: Mapping[str, Mapping[str, float]],
    keys: float = 1,
    users: float = 1,
    **changes: float,
) -> Profile:
    """``profile`` on a policy of one's own: each team's share of a route named in ``routes`` is
    split over that route's replacements (``{"analyst": {"batch": 0.6, "summarize": 0.4}}``; a
    route not named keeps its share), and each team has ``keys`` times its keys and ``users``
    times its users, rounded, at least one (a benchmark's volume spread as a larger
    organisation's would be, or over fewer keys to make larger cache groups); ``changes``: other
    fields of the profile (``key_zipf``: a production key and a few quiet ones; ``repeat_share``)."""
    teams = []
    for t in profile.teams:
        mix: dict[str, float] = {}
        for route, share in t.routes.items():
            for new, part in (routes.get(route) or {route: 1.0}).items():
                mix[new] = mix.get(new, 0.0) + share * part
        teams.append(replace(t, routes=mix, keys=max(1, round(t.keys * keys)), users=max(1, round(t.users * users))))
    return replace(profile, name=name, teams=tuple(teams), **changes)


__all__ = ["PHRASINGS", "WEEK_START", "Drawn", "draw", "for_policy", "prompt_text"]
