"""The composed fold's inputs as integer-coded arrays, for the compiled kernel (:mod:`.fold_kernel`).

Everything :meth:`.fold.Composer.run` reads per request is stateless given the request, so it
is computed here once, in Python, and handed to the kernel as numpy arrays:

- **budget and commit buckets**: a bucket is (scope, who, window, window start). A *series*
  is (scope, who, window); bucket ``b = series_off[s] + widx[k, row]`` where ``widx`` is the
  index of the calendar window (``k``: day/week/month, in the state's time zone) holding the
  row's decision time — the windows :meth:`Limits.bounds` returns, enumerated once;
- **limit groups**: requests with the same (subject, key version) answer to the same budgets,
  rate limits and commit scopes; each group's lists are flattened (CSR: ``*_ptr``, entries);
- **rate windows**: one code per (scope, who), as :func:`rate_buckets_of` keys them;
- **exact cache**: one code per (route, scoped key), one store per route, the TTL and size bound
  of the settings that read or store;
- **per request**: decision, lookup and settlement times, the reservation, what serving it
  upstream costs (:meth:`Composer.served`), what it stores on a miss and when.

Anything the kernel does not fold (a semantic cache, several policy versions, a start state
with requests in flight, a calendar with gaps) makes :func:`inputs` return None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..decisions.limits import (
    Budget,
    Limits,
    Rate,
    _who,
    applicable_budgets,
    applicable_rates,
    nano,
    rate_buckets_of,
    window_bounds,
)
from .cache_stage import HIT_KINDS

if TYPE_CHECKING:
    from datetime import datetime

    from .fold import Composer, Facts

WINDOWS = ("day", "week", "month")
_NONE_I = -1


@dataclass
class Groups:
    """The limits of each (subject, key version), flattened."""

    budgets: list[list[tuple[int, Budget]]] = field(default_factory=list)  # (series, budget)
    commits: list[list[int]] = field(default_factory=list)  # series spend is counted in
    rates: list[list[tuple[int, Rate]]] = field(default_factory=list)  # (rate window, rate)
    rate_windows: list[list[int]] = field(default_factory=list)  # windows an admission counts in


@dataclass
class Inputs:
    """What the kernel reads (arrays) and what turning its output into a ``Folded`` needs."""

    arrays: dict[str, np.ndarray]
    groups: Groups
    budget_flat: list[Budget]
    rate_flat: list[Rate]
    window_ends: list[list[datetime]]  # per window kind: the end of each enumerated window
    served_upstream_unpriced: dict[int, set[str]]  # row -> targets its upstream cost found unpriced
    order: np.ndarray  # rows admitted in this order (routed, with a plan)


class _Codes(dict):  # type: ignore[type-arg]
    """Dense integer codes for hashable values, in first-seen order."""

    def code(self, value: Any) -> int:
        c = self.get(value)
        if c is None:
            c = self[value] = len(self)
        return c


def inputs(composer: Composer) -> Inputs | None:
    """The kernel's inputs for ``composer`` (None: the kernel does not fold this replay)."""
    c = composer
    if len({id(p) for p in c.row_policy}) > 1 or c.start.flights:
        return None
    preps = list(c.prepared) + [p for _, p in c.warm]
    if any(p.settings is not None and p.settings.semantic is not None for p in preps):
        return None
    order = [f for f in c.order if c.plans[f.i]]
    n = c.n
    a: dict[str, np.ndarray] = {}
    series, windows = _Codes(), _Codes()
    groups, gid = _groups(c, order, series, windows)
    cal = _calendar(c.start.timezone, n, order, a)
    if cal is None:
        return None
    _limit_arrays(groups, series, windows, a)
    try:
        _seed(c.start, series, windows, cal[0], a)
    except _Unsupported:
        return None
    unpriced = _per_request(c, order, gid, groups, a)
    _cache_arrays(c, a)
    a["n"] = np.array([n], np.int64)
    return Inputs(
        a,
        groups,
        [b for g in groups.budgets for _, b in g],
        [r for g in groups.rates for _, r in g],
        cal[1],
        unpriced,
        np.array([f.i for f in order], np.int64),
    )


def _groups(c: Composer, order: list[Facts], series: _Codes, windows: _Codes) -> tuple[Groups, list[int]]:
    """The limit group of every admitted row.

    The fold memoises the limits per (subject, key version); they read the subject only through
    ``_who(scope, subject)`` for the scopes the policy's limits and counted spend name, and the
    key's own limits through its version. So rows that agree on those parts share a group
    (usually far fewer than distinct subjects: end users rarely have budgets of their own)."""
    pol = c.row_policy[0] if c.row_policy else c.policy
    counted = sorted(c.counted)
    scopes = {s for s, _ in counted} | {b.scope for b in (pol.budgets.limits if pol.budgets else ())}
    scopes |= {r.scope for r in pol.rate_limits}
    # a Subject's fields are named as the scopes: attrgetter(scope) is _who(scope, subject)
    named = sorted(scopes - {"global"})
    part = attrgetter(*named) if named else (lambda s: None)
    keyed = c.history is not None
    by_key: dict[Any, int] = {}
    g = Groups()
    gid: list[int] = []
    for f in order:
        memo = (part(f.subject), f.key_id, f.key_version) if keyed else part(f.subject)
        k = by_key.get(memo)
        if k is None:
            key = c.key_of(f)
            budgets, rates = applicable_budgets(pol, key, f.subject), applicable_rates(pol, key, f.subject)
            k = by_key[memo] = len(g.budgets)
            g.budgets.append([(series.code((b.limit.scope, b.who, b.limit.window)), b) for b in budgets])
            g.rates.append([(windows.code((r.limit.scope, r.who)), r) for r in rates])
            g.rate_windows.append([windows.code(rb) for rb in rate_buckets_of(rates)])
            whos = [(s, w, _who(s, f.subject)) for s, w in counted]
            g.commits.append([series.code((s, who, w)) for s, w, who in whos if s == "global" or who is not None])
        gid.append(k)
    return g, gid


def _calendar(
    tz: str, n: int, order: list[Facts], a: dict[str, np.ndarray]
) -> tuple[list[list[float]], list[list[datetime]]] | None:
    """Index of the day/week/month window holding each row's decision time, and the windows'
    starts and ends (None when a decision time falls outside the enumerated calendar)."""
    at = np.full(n, np.nan)
    idx = np.array([f.i for f in order], np.int64)
    at[idx] = [f.decide_at for f in order]
    widx = np.zeros((3, len(at)), np.int64)
    starts_all: list[list[float]] = []
    ends_all: list[list[datetime]] = []
    for k, w in enumerate(WINDOWS):
        starts: list[float] = []
        ends_f: list[float] = []
        ends: list[datetime] = []
        if len(idx):
            t, last = float(np.nanmin(at)), float(np.nanmax(at))
            while True:
                s, e = window_bounds(t, w, tz)
                starts.append(s.timestamp())
                ends_f.append(e.timestamp())
                ends.append(e)
                if ends_f[-1] > last:
                    break
                t = ends_f[-1]
            pos = np.searchsorted(np.array(starts), at[idx], side="right") - 1
            if (pos < 0).any() or (at[idx] >= np.array(ends_f)[pos]).any():
                return None
            widx[k, idx] = pos
        starts_all.append(starts)
        ends_all.append(ends)
    a["widx"] = widx
    return starts_all, ends_all


def _limit_arrays(g: Groups, series: _Codes, windows: _Codes, a: dict[str, np.ndarray]) -> None:
    """The groups' lists as CSR arrays, and each series' first bucket."""
    flat = [(s, b.limit.usd, b.limit.mode == "hard") for lst in g.budgets for s, b in lst]
    a["gb_ptr"] = _ptr([len(x) for x in g.budgets])
    a["gb_series"] = np.array([s for s, _, _ in flat], np.int64)
    a["gb_usd"] = np.array([nano(u) for _, u, _ in flat], np.int64)  # nano-dollars, as Limits compares
    a["gb_hard"] = np.array([h for _, _, h in flat], np.bool_)
    a["gc_ptr"] = _ptr([len(x) for x in g.commits])
    a["gc_series"] = np.array([s for x in g.commits for s in x], np.int64)
    rates = [(w, r.limit.rpm, r.limit.tpm) for lst in g.rates for w, r in lst]
    a["gr_ptr"] = _ptr([len(x) for x in g.rates])
    a["gr_win"] = np.array([w for w, _, _ in rates], np.int64)
    a["gr_rpm"] = np.array([_NONE_I if p is None else p for _, p, _ in rates], np.int64)
    a["gr_tpm"] = np.array([_NONE_I if t is None else t for _, _, t in rates], np.int64)
    a["gw_ptr"] = _ptr([len(x) for x in g.rate_windows])
    a["gw_win"] = np.array([w for x in g.rate_windows for w in x], np.int64)
    a["series_kind"] = np.array([WINDOWS.index(key[2]) for key in series], np.int64)
    a["n_windows"] = np.array([max(len(windows), 1)], np.int64)


def _ptr(lengths: list[int]) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _seed(start: Limits, series: _Codes, windows: _Codes, starts: list[list[float]], a: dict[str, np.ndarray]) -> None:
    """The start state's spend, reservations and rate windows, in the kernel's layout."""
    sizes = np.array([len(starts[k]) for k in a["series_kind"]], np.int64)
    off = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=off[1:])
    a["series_off"] = off
    committed, reserved = np.zeros(int(off[-1]), np.int64), np.zeros(int(off[-1]), np.int64)  # nano-dollars
    at_start = [{s: j for j, s in enumerate(ks)} for ks in starts]
    for state, dst in ((start.committed, committed), (start.reserved, reserved)):
        for (scope, who, w, st), v in state.items():
            s = series.get((scope, who, w))
            j = at_start[WINDOWS.index(w)].get(st) if s is not None else None
            if s is not None and j is not None:
                dst[off[s] + j] = v
    a["committed"], a["reserved"] = committed, reserved
    m = int(a["n_windows"][0])
    cap = 64
    rw = {
        "rw_sec": np.zeros((m, cap), np.int64),
        "rw_req": np.zeros((m, cap), np.int64),
        "rw_tok": np.zeros((m, cap), np.int64),
        "rw_head": np.zeros(m, np.int64),
        "rw_len": np.zeros(m, np.int64),
        "rw_requests": np.zeros(m, np.int64),
        "rw_tokens": np.zeros(m, np.int64),
        "rw_reserved": np.zeros(m, np.int64),
    }
    for key, w in start.windows.items():
        code = windows.get(key)
        if code is None:
            continue
        for j, (sec, nreq, ntok) in enumerate(list(w.buckets)[-cap:]):
            rw["rw_sec"][code, j], rw["rw_req"][code, j], rw["rw_tok"][code, j] = sec, nreq, ntok
        rw["rw_len"][code] = min(len(w.buckets), cap)
        rw["rw_requests"][code], rw["rw_tokens"][code], rw["rw_reserved"][code] = w.requests, w.tokens, w.reserved
        if len(w.buckets) > cap:
            raise _Unsupported
    a.update(rw)


class _Unsupported(Exception):
    """A start state the kernel cannot hold (a rate window of more than 64 buckets)."""


def _per_request(
    c: Composer, order: list[Facts], gid: list[int], g: Groups, a: dict[str, np.ndarray]
) -> dict[int, set[str]]:
    """Per-row admission and serving facts (window order; rows not admitted keep defaults).

    Built as lists in admission order and scattered once (a numpy item assignment per value
    costs more than the list append)."""
    costs, plans, rows, served, worst_of = c.costs, c.plans, c.rows, c.served, c.worst_usd
    kept = costs.unpriced
    probe: set[str] = set()
    unpriced: dict[int, set[str]] = {}
    worst_memo: dict[tuple[Any, ...], float] = {}
    has_budgets = [bool(b) for b in g.budgets]
    worst: list[float] = []
    lookup: list[float] = []
    up_cost: list[float] = []
    up_nano: list[int] = []
    up_at: list[float] = []
    up_has: list[bool] = []
    up_tok: list[int] = []
    rids = _Codes()
    costs.unpriced = probe
    try:
        for f, k in zip(order, gid, strict=True):
            plan = plans[f.i]
            assert plan is not None
            r = rows[f.i]
            looked = r.lookup_at
            lookup.append(f.decide_at if looked is None else max(looked, f.decide_at))
            w = 0.0
            if has_budgets[k]:
                wk = (f.prompt_ub, f.completion_ub, tuple(plan), f.reserved_usd)
                w = worst_memo.get(wk)  # type: ignore[assignment]
                if w is None:
                    w = worst_memo[wk] = worst_of(f, plan)
            worst.append(w)
            cost, tokens, at = served(f, r, plan)
            if probe:
                unpriced[f.i] = set(probe)
                probe.clear()
            up_has.append(cost is not None)
            up_cost.append(0.0 if cost is None else cost)
            up_nano.append(0 if cost is None else nano(cost))
            up_tok.append(tokens)
            up_at.append(at)
    finally:
        costs.unpriced = kept
    idx = np.fromiter((f.i for f in order), np.int64, len(order))
    n = c.n
    for name, values, fill in (
        ("decide", [f.decide_at for f in order], np.nan), ("lookup", lookup, np.nan),
        ("up_cost", up_cost, 0.0), ("up_at", up_at, np.nan), ("settle_logged", [f.settle_at for f in order], np.nan),
    ):  # fmt: skip
        a[name] = np.full(n, fill)
        a[name][idx] = values
    ints: tuple[tuple[str, list[int]], ...] = (
        ("group", gid), ("rtok", [f.reserved_tokens for f in order]), ("up_tok", up_tok),
        ("worst", [nano(w) for w in worst]), ("up_nano", up_nano),
        ("rid", [rids.code(f.rid) for f in order]),
    )  # fmt: skip
    for name, column in ints:
        a[name] = np.zeros(n, np.int64)
        a[name][idx] = column
    a["up_has"] = np.zeros(n, np.bool_)
    a["up_has"][idx] = up_has
    return unpriced


def _cache_arrays(c: Composer, a: dict[str, np.ndarray]) -> None:
    """Exact-cache facts of every row (window rows, then warm rows numbered after them)."""
    n, m, rows, facts = c.n, len(c.all_rows), c.rows, c.facts
    keys, stores = _Codes(), _Codes()
    canon_of = {r.rid: r.i for r in c.all_rows}
    preps = [*c.prepared, *(p for _, p in c.warm)]
    skey, store_of, max_e = [-1] * m, [-1] * m, [0] * m
    key_code, store_code = keys.setdefault, stores.setdefault  # dense codes in first-seen order
    for r, p in zip(c.all_rows, preps, strict=True):
        s = p.settings
        if s is not None and s.exact is not None and p.key is not None:
            route = r.route or ""
            skey[r.i] = key_code((route, p.key), len(keys))
            store_of[r.i], max_e[r.i] = store_code(route, len(stores)), s.exact.max_entries
    reads = [p.settings is not None and p.settings.exact is not None and p.read and p.key is not None for p in preps]
    lkey = [k if read else -1 for k, read in zip(skey, reads, strict=False)]
    a["ttl"] = np.array([p.settings.exact.ttl_s if read else 0.0 for p, read in zip(preps, reads, strict=False)])  # type: ignore[union-attr]
    i64 = np.int64  # explicit: an empty window's lists would make float arrays (another kernel signature)
    a["skey"], a["store_of"], a["max_e"] = np.array(skey, i64), np.array(store_of, i64), np.array(max_e, i64)
    a["lkey"] = np.array(lkey[:n], np.int64)
    a["entry_at"] = np.array([np.nan if p.entry is None else p.entry.stored_at for p in preps])
    a["canon"] = np.fromiter((canon_of[r.rid] for r in c.all_rows), np.int64, m)
    a["reached"] = np.array(
        [p.settings is not None and f is not None and f.reached_cache for p, f in zip(preps, facts, strict=False)],
        np.bool_,
    )
    a["bypass"] = np.array([p.bypass is not None for p in c.prepared], np.bool_)
    a["ts"] = np.array([r.ts for r in rows])
    a["flush_at"] = np.array([np.nan if r.lookup_at is None else r.lookup_at for r in rows])
    a["ran_live"] = np.array(
        [f is not None and f.ran and r.logged not in HIT_KINDS for r, f in zip(rows, facts, strict=True)], np.bool_
    )
    a["hit_logged"] = np.array([r.logged == "hit" for r in rows], np.bool_)
    warm = [
        r.i
        for r, p in c.warm
        if p.settings is not None and p.entry is not None and r.stored_at is not None and p.key is not None
    ]
    a["warm"] = np.array(warm, np.int64)
    a["n_keys"] = np.array([max(len(keys), 1)], np.int64)
    a["n_stores"] = np.array([max(len(stores), 1)], np.int64)
    a["hit_s"] = np.array([c.hit_ms["hit"] / 1000])
