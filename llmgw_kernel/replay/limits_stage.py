"""Budgets and rate limits in replay: the live :class:`~llmgw_kernel.decisions.limits.Limits`
folded over the log's admission and settlement events, in time order.

Each request that reached admission (it has a routing plan) is decided at its logged
``admitted_ts`` (or its arrival, when the live policy applied no limit), with the key
settings in force then (the logged ``key_version`` of the key history), reserving the logged
worst case; it settles at its logged ``settled_ts`` (else ``ts_end``) at its logged
``cost_usd``. So the live policy reproduces every live admission
(``compare_to_log() == 0``), and a candidate's budgets and rate limits say which requests
it would have refused, when each team would have run out, and how much spend that prevents.

Estimates, for requests a candidate admits that were refused live (they never ran): their
cost is their reservation (the worst case) and they settle at the median logged latency of
their route. Requests a candidate refuses that ran live stop counting: their cost is
"prevented".

Spend is tracked per calendar window, so a replay of ``[since, until)`` first folds the log
from the start of the longest window that contains ``since`` (a month, or the week before
it) without reporting it, as the live proxy's state at ``since`` held that spend too.

The live proxy's state at start-up is not a replay: :func:`rebuild_from_log` sums the logged
costs and counts the last minute's logged admissions, without deciding anything again.
"""

from __future__ import annotations

import heapq
import os
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..decisions.limits import (
    RATE_WINDOW_S,
    Limits,
    Subject,
    applicable_budgets,
    applicable_rates,
    rate_buckets_of,
    utc,
    window_bounds,
)
from .columns import epoch
from .routing_estimates import _quantile

if TYPE_CHECKING:
    from ..keys.store import KeyHistory
    from ..policy.model import Policy

Columns = dict[str, list[Any]]


class _Req:
    __slots__ = ("i", "rid", "ts", "decide_at", "settle_at", "subject", "key_id", "key_version", "reserved_usd",
                 "reserved_tokens", "cost", "tokens", "ran", "logged", "route")  # fmt: skip

    def __init__(self, w: Columns, i: int) -> None:
        self.i = i
        self.rid = w["request_id"][i]
        self.ts = epoch(w["ts"][i])
        admitted = w["admitted_ts"][i]
        self.decide_at = float(admitted) if admitted is not None else self.ts
        settled = w["settled_ts"][i]
        end = w["ts_end"][i]
        self.settle_at = float(settled) if settled is not None else (epoch(end) if end is not None else self.ts)
        self.route = w["route"][i]
        self.subject = Subject(w["key_id"][i], w["team"][i], w["end_user"][i], self.route or "")
        self.key_id, self.key_version = w["key_id"][i], w["key_version"][i]
        pt, ct = w["prompt_tokens"][i], w["completion_tokens"][i]
        self.tokens = (pt or 0) + (ct or 0)
        self.cost = w["cost_usd"][i]
        self.reserved_usd = w["reserved_usd"][i] if w["reserved_usd"][i] is not None else (self.cost or 0.0)
        self.reserved_tokens = w["reserved_tokens"][i] if w["reserved_tokens"][i] is not None else self.tokens
        self.logged = w["admission"][i]
        self.ran = self.logged in (None, "ok")  # what the live proxy did with it


def _requests(window: Columns) -> list[_Req]:
    """Requests that reached admission (routing planned them), in decision order."""
    reqs = [_Req(window, i) for i in range(len(window["request_id"])) if window["plan"][i] is not None]
    reqs.sort(key=lambda r: (r.decide_at, r.rid))
    return reqs


def simulate(
    policy: Policy, window: Columns, history: KeyHistory | None, report_from: float | None = None
) -> tuple[Limits, dict[str, tuple[str | None, str | None, str | None]]]:
    """Fold ``policy``'s limits over the window: the final state, and per request id its
    (admission, reason, refusing limit) — None when no limit applied. ``report_from``: only requests decided
    at or after it are reported (earlier ones warm the state up)."""
    tz = policy.budgets.timezone if policy.budgets is not None else "UTC"
    limits = Limits(timezone=tz)
    latency = _route_latency(window)
    pending: list[tuple[float, int, _Req, float | None, int, bool]] = []
    out: dict[str, tuple[str | None, str | None, str | None]] = {}
    seq = 0

    def apply(event: tuple[float, int, _Req, float | None, int, bool]) -> None:
        at, _, p, cost, tokens, tracked = event
        if tracked:
            limits.settle(p.rid, at, cost, tokens)
        else:  # not tracked by any limit; its spend still counts for every scope, in its arrival window
            limits.commit(p.subject, p.decide_at, cost)

    for r in _requests(window):
        while pending and pending[0][0] < r.decide_at:
            apply(heapq.heappop(pending))
        key = history.version(r.key_id, r.key_version) if history is not None and r.key_version else None
        budgets = applicable_budgets(policy, key, r.subject)
        rates = applicable_rates(policy, key, r.subject)
        if not budgets and not rates:
            verdict_kind, reason, limit = None, None, None
            if r.ran:
                seq += 1
                heapq.heappush(pending, (r.settle_at, seq, r, r.cost, r.tokens, False))
        else:
            v = limits.admit(r.rid, r.decide_at, r.subject, budgets, rates, r.reserved_usd if budgets else 0.0,
                             r.reserved_tokens)  # fmt: skip
            verdict_kind, reason, limit, admitted = v.kind, v.reason, v.limit, v.allowed
            if admitted:
                if r.ran:
                    settle_at, cost, tokens = r.settle_at, r.cost, r.tokens
                else:  # refused live, so it never ran: estimate
                    settle_at = r.decide_at + latency.get(r.route, 0.0) / 1000
                    cost, tokens = r.reserved_usd, r.reserved_tokens
                seq += 1
                heapq.heappush(pending, (settle_at, seq, r, cost, tokens, True))
        if report_from is None or r.decide_at >= report_from:
            out[r.rid] = (verdict_kind, reason, limit)
    while pending:
        apply(heapq.heappop(pending))
    return limits, out


def _route_latency(window: Columns) -> dict[str, float]:
    by: dict[str, list[float]] = defaultdict(list)
    for route, outcome, lat in zip(window["route"], window["outcome"], window["latency_ms"], strict=True):
        if outcome == "ok" and lat is not None and route is not None:
            by[route].append(lat)
    return {r: _quantile(v, 0.5) or 0.0 for r, v in by.items()}


def replay_limits(policy: Policy, window: Columns) -> tuple[Columns, list[bool]]:
    extra: dict[str, Any] = window  # the replay attaches the key history and the warm-up rows
    history: KeyHistory | None = extra.get("_key_history")
    warm: Columns | None = extra.get("_limits_warmup")
    full = _concat(warm, window) if warm else window
    since = epoch(window["ts"][0]) if warm and window["request_id"] else None
    _, decided = simulate(policy, full, history, report_from=since)
    kinds, reasons, limits, differs = [], [], [], []
    for rid, logged, plan in zip(window["request_id"], window["admission"], window["plan"], strict=True):
        kind, reason, limit = decided.get(rid, (None, None, None)) if plan is not None else (None, None, None)
        kinds.append(kind)
        reasons.append(reason)
        limits.append(limit)
        differs.append((kind or "ok") != (logged or "ok"))  # admitted with or without a limit: the same decision
    return {"logged_admission": list(window["admission"]), "replay_admission": kinds,
            "replay_admission_reason": reasons, "replay_admission_limit": limits}, differs  # fmt: skip


def summarize_limits(policy: Policy, window: Columns, decisions: Columns) -> dict[str, Any]:
    refused = [(i, k) for i, k in enumerate(decisions["replay_admission"]) if k not in (None, "ok")]
    prevented = 0.0
    cutoffs: dict[str, dict[str, Any]] = {}
    for i, kind in refused:
        logged = window["admission"][i]
        if logged in (None, "ok"):
            prevented += window["cost_usd"][i] or 0.0
        limit = decisions["replay_admission_limit"][i] or kind
        c = cutoffs.setdefault(limit, {"limit": limit, "kind": kind, "first_refused_at": None, "refused": 0})
        c["refused"] += 1
        at = epoch(window["ts"][i])
        if c["first_refused_at"] is None or at < c["first_refused_at"]:
            c["first_refused_at"] = at
    for c in cutoffs.values():
        c["first_refused_at"] = utc(c["first_refused_at"])
    return {
        "limits": {
            "evaluated": sum(1 for k in decisions["replay_admission"] if k is not None),
            "refused": len(refused),
            "budget_exceeded": sum(1 for _, k in refused if k == "budget_exceeded"),
            "rate_limited": sum(1 for _, k in refused if k == "rate_limited"),
            "newly_refused": sum(1 for i, _ in refused if window["admission"][i] in (None, "ok")),
            "newly_admitted": sum(
                1
                for i, k in enumerate(decisions["replay_admission"])
                if k == "ok" and window["admission"][i] not in (None, "ok")
            ),  # fmt: skip
            "spend_prevented_usd": round(prevented, 6),
            "cutoffs": sorted(cutoffs.values(), key=lambda c: c["first_refused_at"]),
        }
    }


def _concat(a: Columns, b: Columns) -> Columns:
    return {k: list(a.get(k, [None] * len(a["request_id"]))) + list(v) for k, v in b.items() if not k.startswith("_")}


def warmup_since(policy: Policy, since: float) -> float:
    """Where the log must be folded from for the state at ``since`` to be complete."""
    tz = policy.budgets.timezone if policy.budgets is not None else "UTC"
    return min(window_bounds(since, w, tz)[0].timestamp() for w in ("week", "month"))


# Spend is summed per subject and quarter hour: every time zone's midnight falls on one, so a
# group lies inside one day, week and month whatever the policy's time zone.
_SPEND_SLOT_S = 900


def rebuild_from_log(
    policy: Policy, data_dir: str | os.PathLike[str], history: KeyHistory | None, now: float | None = None
) -> Limits:
    """The live state at start-up, from what the log says happened (no admission is re-run):

    - spend: every logged ``cost_usd``, in the windows of its admission (or arrival), for every
      scope — refused requests cost nothing, and a row without a settled cost adds nothing;
    - rate windows: the admissions (``admission = 'ok'``) and settled tokens of the last minute,
      counted in the windows of the limits that apply to them now;
    - nothing in flight: a reservation lives only as long as the process that holds it.
    """
    import time

    from ..log.reader import open_log

    now = time.time() if now is None else now
    limits = Limits(timezone=policy.budgets.timezone if policy.budgets is not None else "UTC")
    try:
        con = open_log(data_dir)
    except Exception:
        return limits
    try:
        present = {r[0] for r in con.execute("DESCRIBE requests").fetchall()}
        if "cost_usd" not in present:
            return limits
        at = "coalesce(admitted_ts, epoch(ts))" if "admitted_ts" in present else "epoch(ts)"
        spend = con.execute(
            f"SELECT key_id, team, end_user, floor({at} / {_SPEND_SLOT_S}) AS slot, sum(cost_usd) FROM requests"
            " WHERE ts >= to_timestamp(?) AND cost_usd IS NOT NULL AND cost_usd <> 0 GROUP BY ALL ORDER BY slot",
            [warmup_since(policy, now)],
        ).fetchall()  # fmt: skip
        recent = _recent_admissions(con, present, now - RATE_WINDOW_S - 1)
    finally:
        con.close()
    for key_id, team, user, slot, usd in spend:
        limits.commit(Subject(key_id, team, user, ""), slot * _SPEND_SLOT_S, usd)
    _rebuild_rates(policy, limits, recent, history, now - RATE_WINDOW_S - 1)
    return limits


def _recent_admissions(con: Any, present: set[str], since: float) -> list[tuple]:
    if not {"admission", "admitted_ts", "settled_ts", "key_version"} <= present:
        return []
    return con.execute(
        "SELECT key_id, key_version, team, end_user, route, admitted_ts, settled_ts,"
        " coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0) FROM requests"
        " WHERE admission = 'ok' AND (admitted_ts >= ? OR settled_ts >= ?)",
        [since, since],
    ).fetchall()


def _rebuild_rates(policy: Policy, limits: Limits, rows: list[tuple], history: KeyHistory | None, since: float) -> None:
    """Count the recent admissions and settled tokens in the rate windows, in time order."""
    events: list[tuple[float, int, int, list[tuple]]] = []
    for key_id, key_version, team, user, route, admitted, settled, tokens in rows:
        key = history.version(key_id, key_version) if history is not None and key_version else None
        subject = Subject(key_id, team, user, route or "")
        buckets = rate_buckets_of(applicable_rates(policy, key, subject))
        if not buckets:
            continue
        if admitted is not None and admitted >= since:
            events.append((admitted, 1, 0, buckets))
        if settled is not None and settled >= since:
            events.append((settled, 0, tokens, buckets))
    events.sort(key=lambda e: e[0])
    for at, requests, tokens, buckets in events:
        limits.record(buckets, at, requests, tokens)
