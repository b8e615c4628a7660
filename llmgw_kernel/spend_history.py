"""A month of synthetic spend history, for budget analysis (``notebooks/tune_budgets.ipynb``).

    python -m llmgw_kernel.spend_history --data-dir llmgw-spend-data --days 30 --seed 0

It is the traffic profile's (:mod:`llmgw_kernel.traffic_profile`: the one synthetic traffic
model — teams, keys, users, hours, routes, targets and prices — that ``llmgw traffic`` and the
notebooks serve) written over weeks instead of served over minutes. Budgets count spend per
calendar day, week or month, so a log that shows a budget biting has to span weeks of traffic.
Serving that through ``llmgw serve`` would take weeks (or a fake clock), so, unlike
:mod:`llmgw_kernel.traffic` and :mod:`llmgw_kernel.cache_traffic`, **nothing here is served**:
:func:`make_spend_history` fills in one :class:`~llmgw_kernel.log.record.RequestRecord` per
request exactly as the live proxy does for a successful chat completion admitted with *no*
budget or rate limit in force (open mode: ``key_id`` is the hash of a presented key, ``team``
comes from ``metadata.team``) and writes it **directly** through the proxy's own
:class:`~llmgw_kernel.log.writer.LogWriter`. Every reader (``open_log``, replay, the dashboards)
then sees ordinary log rows, and the policy written next to them (``spend-history-policy.yaml``:
the profile's policy with ``log.bodies: none`` and **no** ``budgets``) replays them exactly
(``compare_to_log() == 0``).

The traffic (deterministic given ``seed``; a few thousand rows; about a second):

- the profile's teams (:data:`~llmgw_kernel.traffic_profile.TEAMS`), each with its own
  weekday volume, weekend share, hours of the day (business hours, round the clock, a nightly
  batch), mix of routes and prompt / completion sizes (log-normal), a few keys and a few end users;
- ``support`` has a launch spike (five times its volume on days 12-16, a working week when
  starting on 2026-10-01) and ``analytics``
  grows 4% a day (a new pipeline ramping up), so a monthly budget set from an ordinary day
  runs out part-way through the month;
- the profile's three routes (:data:`~llmgw_kernel.traffic_profile.ROUTES`: a weighted split
  between a cheap and a dear target, each with a fallback): each request's target is the live
  routing draw for its request id, its delay the target's; ``cost_usd`` is the policy's price
  of the logged tokens
  (:func:`llmgw_kernel.decisions.cost.cost_usd`), as the proxy computes it.

No bodies are logged (the policy says ``bodies: none``), so replay sizes each prompt by its
logged ``prompt_tokens``. Requests never fail here: errors do not spend.

>>> import tempfile
>>> from llmgw_kernel import open_log
>>> report = make_spend_history(tempfile.mkdtemp(), days=2, start="2026-10-05")
>>> report.rows == open_log(report.data_dir).execute("SELECT count(*) FROM requests").fetchone()[0]
True
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .traffic_profile import PROFILES, TARGETS, Profile, Team, profile_policy

BY_TARGET = {t.target: t for t in TARGETS.values()}
POLICY_FILE = "spend-history-policy.yaml"


@dataclass
class SpendHistoryReport:
    """What :func:`make_spend_history` wrote."""

    data_dir: Path
    policy: Path
    start: datetime  # first day, 00:00 UTC
    end: datetime  # the day after the last, 00:00 UTC
    rows: int
    cost_usd: float
    teams: dict[str, dict[str, float]] = field(default_factory=dict)  # team -> {requests, cost_usd}
    elapsed_s: float = 0.0


def spend_history_policy(profile: Profile = PROFILES["demo"]) -> dict[str, Any]:
    """The policy the history was "served" with: the traffic profile's routes, targets and
    prices, no bodies logged, no budgets."""
    doc = profile_policy(profile)
    doc["description"] = f"synthetic spend history, profile {profile.name!r} (llmgw_kernel.spend_history); no budgets"
    doc["log"] = {"bodies": "none"}
    return doc


def make_spend_history(
    data_dir: str | Path,
    days: int = 30,
    start: str | date = "2026-10-01",
    teams: Sequence[Team] | None = None,
    seed: int = 0,
    profile: Profile = PROFILES["demo"],
) -> SpendHistoryReport:
    """Write ``days`` days of synthetic traffic from ``start`` (UTC) to the log in ``data_dir``,
    and ``spend-history-policy.yaml`` next to it. Refuses a directory that already holds a log
    (the history would be counted twice)."""
    import numpy as np

    from .log.record import RequestRecord
    from .log.segments import list_segments, log_dir
    from .log.writer import LogWriter
    from .policy.load import load_policy

    t0 = time.perf_counter()
    root = Path(data_dir)
    if log_dir(root).exists() and list_segments(log_dir(root)):
        raise FileExistsError(f"{root} already holds a request log; use an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    policy_path = root / POLICY_FILE
    policy_path.write_text(yaml.safe_dump(spend_history_policy(profile), sort_keys=False))
    policy = load_policy(policy_path)
    first = date.fromisoformat(start) if isinstance(start, str) else start
    begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
    from .cache.service import key_id

    records: list[RequestRecord] = []
    teams_out: dict[str, dict[str, float]] = {}
    # each team its own stream: changing one team leaves the others' traffic as it was
    for team in teams if teams is not None else profile.teams:
        rng = np.random.default_rng([seed, int(hashlib.sha256(team.name.encode()).hexdigest()[:8], 16)])
        keys = [key_id(f"sk-synthetic-{team.name}-{k}") for k in range(team.keys)]
        users = [f"{team.name}-user-{u}" for u in range(team.users)]
        hours = np.asarray(team.hours, dtype=float) / sum(team.hours)
        routes = list(team.routes)
        shares = np.asarray([team.routes[r] for r in routes], dtype=float) / sum(team.routes.values())
        n_req, spent = 0, 0.0
        for day in range(days):
            midnight = begin + timedelta(days=day)
            n = rng.poisson(team.mean_on(day, midnight.weekday() >= 5))
            if n == 0:
                continue
            at = midnight.timestamp() + rng.choice(24, size=n, p=hours) * 3600.0 + rng.uniform(0, 3600, size=n)
            picks = rng.choice(len(routes), size=n, p=shares)
            prompt = np.maximum(20, rng.lognormal(math.log(team.prompt_tokens), 0.6, size=n)).astype(int)
            completion = np.maximum(1, rng.lognormal(math.log(team.completion_tokens), 0.5, size=n)).astype(int)
            key_pick, user_pick = rng.integers(0, len(keys), size=n), rng.integers(0, len(users), size=n)
            jitter = rng.uniform(0.8, 1.3, size=n)
            for i in range(n):
                rec = _record(
                    RequestRecord, policy, seed, team.name, day, i, float(at[i]), routes[picks[i]],
                    int(prompt[i]), int(completion[i]), keys[key_pick[i]], users[user_pick[i]], float(jitter[i]),
                )  # fmt: skip
                spent += rec.cost_usd or 0.0
                records.append(rec)
            n_req += n
        teams_out[team.name] = {"requests": n_req, "cost_usd": round(spent, 6)}
    records.sort(key=lambda r: r.ts)
    writer = LogWriter(root, flush_ms=60_000, journal=False)  # a rerun rebuilds it: no journal needed
    for rec in records:
        writer.append(rec)
    writer.close()
    return SpendHistoryReport(
        data_dir=root, policy=policy_path, start=begin, end=begin + timedelta(days=days), rows=len(records),
        cost_usd=round(sum(t["cost_usd"] for t in teams_out.values()), 6), teams=teams_out,
        elapsed_s=round(time.perf_counter() - t0, 3),
    )  # fmt: skip


def _record(
    record_cls: Any, policy: Any, seed: int, team: str, day: int, i: int, at: float, route: str,
    prompt: int, completion: int, key: str | None, user: str, jitter: float,
) -> Any:  # fmt: skip
    """One successful, unlimited chat completion, filled in as the live pipeline fills it: the
    plan is the live routing draw for the request id, the first target answers (the history
    has no failures: errors spend nothing), its delay is the profile's, its cost the policy's."""
    from .decisions.cost import cost_usd
    from .decisions.routing import plan_route

    rid = "req_" + hashlib.sha256(f"spend-history:{seed}:{team}:{day}:{i}".encode()).hexdigest()[:24]
    plan = plan_route(policy, route, rid)
    target = plan.targets[0]
    provider, model = target.split("/", 1)
    rec = record_cls(rid, at, "chat.completions")
    upstream_ms = BY_TARGET[target].slow_ms * jitter
    latency_ms = upstream_ms + 3.0 * jitter  # the gateway's own overhead
    rec.route, rec.policy_version, rec.plan, rec.route_reason = route, policy.version, plan.targets, plan.reason
    rec.status, rec.outcome = 200, "ok"
    rec.target, rec.provider, rec.upstream_model = target, provider, model
    rec.attempts = [{"target": target, "status": 200, "latency_ms": round(upstream_ms, 3), "error": None}]
    rec.usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    rec.cost_usd = cost_usd(policy, target, prompt, completion)
    rec.key_id, rec.team, rec.end_user = key, team, user
    rec.metadata = {"team": team}
    rec.body_mode = "none"
    rec.upstream_ms, rec.latency_ms = round(upstream_ms, 3), round(latency_ms, 3)
    rec.ts_end = at + latency_ms / 1000
    return rec


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmgw_kernel.spend_history", description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--start", default="2026-10-01", help="first day (UTC), YYYY-MM-DD")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    report = make_spend_history(args.data_dir, days=args.days, start=args.start, seed=args.seed)
    print(f"{report.rows} requests, ${report.cost_usd:,.2f}, {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}")
    for team, t in report.teams.items():
        print(f"  {team:<10} {int(t['requests']):>6} requests  ${t['cost_usd']:>9,.2f}")
    print(f"log and {POLICY_FILE} in {report.data_dir} ({report.elapsed_s:.2f}s)")


if __name__ == "__main__":
    main()
