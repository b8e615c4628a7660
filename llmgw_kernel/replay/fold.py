"""The composed replay: admission, cache and cost decided together, in the order live serving
decides them (docs/replay.md).

Live, a request is routed, then admitted by its budgets and rate limits (reserving its worst
case on the targets routing chose), then — only if admitted — looked up in the cache, then
served upstream or from the cache, and settled at what it really cost (nothing for a hit). The
stages couple: a cheaper route or a cache hit leaves budget for later requests; a refused
request never reaches the cache, so it neither hits nor stores. Replay therefore folds one
state — :class:`~llmgw_kernel.decisions.limits.Limits` and the candidate's caches — over the
window in decision order, each request reading what the previous stages decided for it:

1. **routing** (stateless, computed before the fold): the candidate's plan;
2. **admission** at the logged decision time, with the key settings in force then, reserving
   the candidate's worst case *on the candidate's targets* (:func:`worst_case_usd` over the
   plan, from the logged prompt bound and max tokens);
3. **cache**, for admitted requests only, with the candidate's caches holding what the
   candidate stored (an answer enters the cache when its request finished);
4. **cost**: 0 for a hit (its saving is the source answer's replayed cost) or a refusal; else
   what :mod:`.costs` says the candidate's plan would have cost. Settlement returns the
   reservation and commits that cost at the logged settlement time (estimated for requests
   the live proxy did not serve upstream).

A check of a sampled semantic hit (``endpoint = 'cache.check'``) is not a request: it is never
admitted nor looked up; its cost is committed (untracked, in its arrival's windows, as live
``Limits.commit``) when it finished, if the candidate served its hit from the semantic cache too.

The live policy replays its own log to the same decisions: with the same plan, prices and
limits, every input of every decision is a logged fact. What is estimated for a candidate is
listed in :mod:`.costs` and docs/replay.md.

The state at the window's start is what the log says it was (the candidate "promoted at
``since``"): spend of the current budget windows, the last minute's admissions, and the
answers cached within their TTL — see :func:`.limits_stage.limits_at` and the warm rows.
"""

from __future__ import annotations

import copy
import functools
import heapq
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache.bound_replay import attach_journal
from ..cache.exact import Entry
from ..decisions.cost import cost_usd
from ..decisions.limits import Limits, Subject, applicable_budgets, applicable_rates, worst_case_usd
from ..log.record import CHECK_ENDPOINT
from .cache_stage import HIT_KINDS, CacheState, Outcome, Prepared, Row, prepare, rows
from .columns import epoch
from .costs import CostModel, Estimates, estimates_of
from .window import Window

if TYPE_CHECKING:
    from ..keys.store import KeyHistory
    from ..policy.model import Policy

Columns = Any  # a replay window: column name -> values

#: windows from this size are folded by the compiled kernel (loading it costs 0.4-1.5 s)
COMPILED_FROM_ROWS = 20_000
_MEMO_MAX = 200_000  # distinct (policy, subject, key version) remembered per fold

#: a request's fate in the composed replay (``check``: not a request — the gateway's own check of
#: a sampled semantic hit, charged to the hit's budgets, never admitted, never looked up)
UPSTREAM, CACHE, REFUSED, UNKNOWN_MODEL, CHECK = "upstream", "cache", "refused", "unknown_model", "check"


class Facts:
    """The admission facts of one routed request, as logged."""

    __slots__ = ("i", "rid", "ts", "decide_at", "settle_at", "subject", "key_id", "key_version", "prompt_ub",
                 "completion_ub", "reserved_usd", "reserved_tokens", "cost", "tokens", "logged", "ran", "plan",
                 "cached_tokens", "reached_cache")  # fmt: skip
    i: int
    rid: str
    ts: float
    decide_at: float
    settle_at: float
    subject: Subject
    key_id: str | None
    key_version: int | None
    prompt_ub: int | None
    completion_ub: int | None
    reserved_usd: float
    reserved_tokens: int
    cost: float | None
    tokens: int
    logged: str | None
    ran: bool
    plan: tuple[str, ...] | None
    cached_tokens: int | None
    reached_cache: bool


def _epochs(window: Columns, name: str) -> list[float | None]:
    """A time column as epoch seconds (columnar when the window can)."""
    fast = getattr(window, "epoch", None)
    if fast is not None:
        return list(fast(name))
    return [None if t is None else epoch(t) for t in window[name]]


def facts_of(window: Columns, plans: list[list[str] | None]) -> list[Facts | None]:
    """The admission facts of every request routing planned (None for the others)."""
    w = window
    ts_, end_ = _epochs(w, "ts"), _epochs(w, "ts_end")
    cols = (w["request_id"], w["admitted_ts"], w["settled_ts"], w["route"], w["key_id"], w["team"], w["end_user"],
            w["key_version"], w["prompt_tokens"], w["completion_tokens"], w["cost_usd"], w["cached_tokens"],
            w["reserved_tokens"], w["reserved_prompt_tokens"], w["reserved_usd"], w["admission"], w["plan"],
            w["outcome"], w["cache"], w["attempts"])  # fmt: skip
    out: list[Facts | None] = []
    for i, (rid, admitted, settled, route, key_id, team, user, kv, pt, ct, cost, cached, rtok, bound, rusd, adm, plan,
            outcome, cache, attempts) in enumerate(zip(*cols, strict=True)):  # fmt: skip
        if plans[i] is None:
            out.append(None)
            continue
        f = Facts()
        f.i, f.rid = i, rid
        ts = f.ts = ts_[i] or 0.0
        f.decide_at = float(admitted) if admitted is not None else ts
        end = end_[i]
        f.settle_at = float(settled) if settled is not None else (end if end is not None else ts)
        f.subject = Subject(key_id, team, user, route or "")
        f.key_id, f.key_version = key_id, kv
        f.tokens = (pt or 0) + (ct or 0)
        f.cost, f.cached_tokens = cost, cached
        f.prompt_ub = bound
        f.completion_ub = rtok - bound if bound is not None and rtok else None
        f.reserved_usd = rusd if rusd is not None else (cost or 0.0)
        f.reserved_tokens = rtok if rtok is not None else f.tokens
        f.logged = adm
        f.ran = adm in (None, "ok")  # the live proxy admitted it
        f.plan = tuple(plan) if plan is not None else None
        # a request stopped after admission by a defect of its own (a bad cache header) never
        # reached the cache live, whatever the policy: it does not in replay either
        f.reached_cache = not (outcome == "client_error" and cache is None and not attempts)
        out.append(f)
    return out


class Folded:
    """Per request (window order): what the composed replay decided.

    The Python fold builds it from lists; the compiled fold from arrays
    (:class:`.fold_kernel.FoldedArrays`, whose lists are made when first read). Besides the
    lists, every ``Folded`` answers the cache's decisions by column: :attr:`cache_kind` and
    :attr:`cache_source_rid` (no :class:`Outcome` or ``Row`` object needed)."""

    def __init__(
        self,
        admission: list[str | None],
        admission_reason: list[str | None],
        admission_limit: list[str | None],
        cache: list[Outcome | None],  # None: did not reach a cache
        cost: list[float | None],  # net: 0 for hits and refusals, None when unpriced
        served_by: list[str | None],
        saved: list[float | None],
        limits: Limits,
        unpriced: set[str] | None = None,
    ) -> None:
        self.admission, self.admission_reason, self.admission_limit = admission, admission_reason, admission_limit
        self.cache, self.cost, self.served_by, self.saved = cache, cost, served_by, saved
        self.limits = limits
        self.unpriced: set[str] = set() if unpriced is None else unpriced

    @functools.cached_property
    def cache_kind(self) -> list[str | None]:
        """Each request's cache outcome (``hit``, ``semantic-hit``, ``miss``, ``bypass``; None:
        it did not reach a cache)."""
        return [o.kind if o is not None else None for o in self.cache]

    @functools.cached_property
    def cache_source_rid(self) -> list[str | None]:
        """The request whose answer each hit was served (None for the others)."""
        return [o.source.rid if o is not None and o.source is not None else None for o in self.cache]

    @functools.cached_property
    def cache_similarity(self) -> list[float | None]:
        """The similarity of each semantic lookup's best candidate (None for the others)."""
        return [o.similarity if o is not None else None for o in self.cache]

    def column(self, name: str) -> np.ndarray:
        """A per-request field (``admission``, ``cost``, ``cache_kind``, ...) as an object array
        (strings, floats, None): what the stages' columns are made of (:mod:`.fold_columns`)."""
        values = getattr(self, name)
        out = np.empty(len(values), object)
        out[:] = values
        return out

    def source_targets(self, rows: np.ndarray) -> list[str | None]:
        """The target that produced the answer each hit in ``rows`` was served."""
        return [self.cache[i].source.target for i in rows.tolist()]  # type: ignore[union-attr]


class Composer:
    """The threshold-independent preparation of a composed replay, run once; :meth:`run`
    folds it (once per semantic threshold in a sweep).

    The per-row objects the Python fold reads (:attr:`facts`, :attr:`order`, :attr:`rows`,
    :attr:`prepared`, :attr:`warm`) are made when first read: the compiled fold reads the
    window's columns instead (:mod:`.fold_inputs`) and never makes them."""

    def __init__(
        self,
        policy: Policy,
        window: Columns,
        plans: list[list[str] | None],
        history: KeyHistory | None = None,
        start: Limits | None = None,
        warm: Columns | None = None,
        row_policies: list[Policy] | None = None,
        estimates: Estimates | None = None,
    ) -> None:
        self.policy, self.window, self.plans, self.history = policy, window, plans, history
        n = _size(window)
        self.n = n
        #: the policy deciding each row (replay "as served": the version that served it)
        self.row_policy = row_policies if row_policies is not None else [policy] * n
        #: the distinct policies of the rows
        self.policies = list({id(p): p for p in row_policies}.values()) if row_policies is not None else [policy]
        tz = policy.budgets.timezone if policy.budgets is not None else "UTC"
        self.start = start if start is not None else Limits(timezone=tz)
        self.counted = _counted(self.policies, history is not None)
        est = estimates if estimates is not None else estimates_of(window)
        self.estimates = est
        self.costs = CostModel(policy, est.failure)
        self.means = est.means
        self.latency = est.latency
        self.hit_ms = est.hit_ms
        #: the answers cached before the window (rows logged before it), None: none
        self.warm_window = warm if warm is not None and _size(warm) else None

    # -- the per-row objects of the Python fold (made when first read) ------------------------

    @functools.cached_property
    def facts(self) -> list[Facts | None]:
        """The admission facts of every request routing planned (None for the others)."""
        return facts_of(self.window, self.plans)

    @functools.cached_property
    def order(self) -> list[Facts]:
        """The routed requests in decision order."""
        return sorted((f for f in self.facts if f is not None), key=lambda f: (f.decide_at, f.rid))

    @functools.cached_property
    def _cache_rows(self) -> tuple[list[Row], list[Row]]:
        warm = self.warm_window
        warm_rows: list[Row] = rows(warm) if warm is not None else []
        for r in warm_rows:  # numbered after the window's rows: ``all_rows[r.i] is r`` for every row
            r.i += self.n
        return rows(self.window, borrow_from=warm_rows), warm_rows

    @property
    def rows(self) -> list[Row]:
        """The cache facts of every window row."""
        return self._cache_rows[0]

    @functools.cached_property
    def all_rows(self) -> list[Row]:
        """The window's rows, then the warm rows."""
        return self.rows + self._cache_rows[1]

    @functools.cached_property
    def checks(self) -> list[bool]:
        """Each window row is a check of a sampled semantic hit (``endpoint = 'cache.check'``)."""
        return [e == CHECK_ENDPOINT for e in self.window["endpoint"]]

    @functools.cached_property
    def all_endpoints(self) -> list[str]:
        warm = self.warm_window
        return list(self.window["endpoint"]) + (list(warm["endpoint"]) if warm is not None else [])

    @functools.cached_property
    def prepared(self) -> list[Prepared]:
        """Each window row's cache facts under the policy that decides it."""
        w = self.window
        # a Window reads the bodies of the rows that need one (keyless rows), not the column as a list
        bodies = w if isinstance(w, Window) else w.get("request_body")
        return _prepare_by_policy(self.row_policy, self.rows, w["endpoint"], bodies)

    @functools.cached_property
    def warm(self) -> list[tuple[Row, Prepared]]:
        """The warm rows, with their cache facts under the policy."""
        warm_rows = self._cache_rows[1]
        endpoints = list(self.warm_window["endpoint"]) if self.warm_window is not None else []
        return list(zip(warm_rows, prepare(self.policy, warm_rows, endpoints), strict=True))

    # -- per request, threshold-independent ---------------------------------------------------

    def key_of(self, f: Facts) -> Any:
        """The settings of ``f``'s virtual key in force when it was logged (None: no key history)."""
        return self.key_settings(f.key_id, f.key_version)

    def key_settings(self, key_id: str | None, key_version: int | None) -> Any:
        """The settings of a virtual key at a logged version (None: no key history, no key)."""
        if self.history is None or not key_version or not key_id:
            return None
        return self.history.version(key_id, key_version)

    def worst_usd(self, f: Facts, plan: list[str]) -> float:
        """The reservation: the candidate's worst case on its own targets (logged when the
        log has no prompt bound, i.e. rows written before it was logged)."""
        if f.prompt_ub is None or f.completion_ub is None:
            return f.reserved_usd
        return worst_case_usd(self.row_policy[f.i], plan, f.prompt_ub, f.completion_ub)

    def served(self, f: Facts, r: Row, plan: list[str]) -> tuple[float | None, int, float]:
        """(cost, tokens, settle time) of serving ``f`` upstream under the candidate."""
        route = r.route
        if f.ran and r.logged not in HIT_KINDS and f.plan == tuple(plan):
            if r.target is None:  # failed upstream live: it costs what it cost then
                return (f.cost if f.cost is not None else 0.0), f.tokens, f.settle_at
            c = cost_usd(self.row_policy[f.i], r.target, r.pt, r.ct, f.cached_tokens)
            return c, f.tokens, f.settle_at
        src = self.rows[self.by_rid[r.source]] if r.source in self.by_rid else None
        if f.ran and r.logged not in HIT_KINDS and (r.pt is not None or r.ct is not None):
            pt, ct, ms = float(r.pt or 0), float(r.ct or 0), r.latency or 0.0
        elif src is not None and (src.pt is not None or src.ct is not None):
            pt, ct, ms = float(src.pt or 0), float(src.ct or 0), src.latency or 0.0
        else:
            pt, ct = self.means.get(route or "", (0.0, 0.0))
            ms = self.latency.get(route or "", 0.0)
        cost = self.costs.expected(self.row_policy[f.i], route, plan, pt, ct)
        return cost, round(pt + ct), f.decide_at + ms / 1000

    @functools.cached_property
    def by_rid(self) -> dict[str, int]:
        """Window row of each request id."""
        return {r.rid: r.i for r in self.rows}

    # -- the fold ---------------------------------------------------------------------------

    def run(self, index: Any = None, threshold: float | None = None, compiled: bool | None = None) -> Folded:
        """Fold the window. Large windows (the cache's default index, no threshold override) go
        through the compiled kernel when it can fold them (``fold_kernel``: the same decisions,
        tested field by field); the Python fold below is the reference and the fallback.
        ``compiled``: None decides by size (:data:`COMPILED_FROM_ROWS`), False runs the Python fold."""
        auto = self.n >= COMPILED_FROM_ROWS if compiled is None else compiled
        if index is None and threshold is None and auto:
            from .fold_kernel import run_compiled  # imports this module

            folded = run_compiled(self)
            if folded is not None:
                return folded
        n = self.n
        out = Folded([None] * n, [None] * n, [None] * n, [None] * n, [None] * n, [None] * n, [None] * n,
                     copy.deepcopy(self.start))  # fmt: skip
        limits = out.limits
        limits.counted = self.counted
        cache = CacheState(self.all_rows, index, threshold, self.policy.version)
        attach_journal(cache.caches, self.policy, self.window)  # a candidate bound learns the live evidence
        for r, p in self.warm:
            if p.settings is not None and p.entry is not None and r.stored_at is not None and p.key is not None:
                cache.store_later(r, p, p.entry)
        # events after admission, in time order: a cache lookup (prio 0) at the logged time the
        # stores were consulted, then a settlement (prio 1); at equal times admissions and
        # lookups come first, as a settlement or a store counts only strictly before
        events: list[tuple[Any, ...]] = []
        seq = 0

        def serve(f: Facts, at_lookup: float, tracked: bool) -> None:
            nonlocal seq
            i = f.i
            plan = self.plans[i]
            assert plan is not None
            r, p = self.rows[i], self.prepared[i]
            o = cache.lookup(r, p, at_lookup) if p.settings is not None and f.reached_cache else None
            out.cache[i] = o
            cost_: float | None
            if o is not None and o.kind in HIT_KINDS:
                assert o.source is not None
                out.served_by[i], cost_, tokens = CACHE, 0.0, 0
                at = f.settle_at if r.logged == o.kind else at_lookup + self.hit_ms[o.kind] / 1000
                out.saved[i] = self._saved(out, o.source)
            else:
                out.served_by[i] = UPSTREAM
                cost_, tokens, at = self.served(f, r, plan)
                if o is not None and o.kind == "miss":
                    if f.ran and r.logged not in HIT_KINDS:  # it ran live: stored (or not) as logged
                        if p.entry is not None:
                            cache.store_later(r, p, p.entry)
                    else:  # it runs only in replay: its answer is stored when it finishes
                        cache.store_later(r, p, Entry(r.rid, max(at, at_lookup), b"", r.target, None))
            out.cost[i] = cost_
            seq += 1
            heapq.heappush(events, (max(at, at_lookup), 1, seq, f, cost_, tokens, tracked))

        def drain(until: float) -> None:
            while events and events[0][0] < until:
                ev = heapq.heappop(events)
                if not ev[1]:
                    serve(ev[3], ev[0], ev[4])
                    continue
                f = ev[3]
                if checks[f.i]:  # a check is spent only if the candidate served its hit from the semantic cache
                    out.cost[f.i] = ev[4] if self._checked_hit(out, f) else 0.0
                    ev = (*ev[:4], out.cost[f.i], *ev[5:])
                _apply(limits, ev)

        # the limits that apply to a (policy, subject, key version): the same for all its requests
        applicable: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
        checks = self.checks
        for f in self.order:
            drain(f.decide_at)
            i = f.i
            plan = self.plans[i]
            assert plan is not None
            if checks[i]:  # never admitted, never looked up: its cost is committed when it finished
                out.served_by[i], out.cost[i] = CHECK, 0.0
                if plan:
                    cost_, _, at = self.served(f, self.rows[i], plan)
                    seq += 1
                    heapq.heappush(events, (at, 1, seq, f, cost_, 0, False))
                continue
            if not plan:
                out.served_by[i] = UNKNOWN_MODEL
                continue
            pol = self.row_policy[i]
            memo_key = (id(pol), f.subject, f.key_version)
            found = applicable.get(memo_key)
            if found is None:
                key = self.key_of(f)
                found = (applicable_budgets(pol, key, f.subject), applicable_rates(pol, key, f.subject))
                if len(applicable) < _MEMO_MAX:
                    applicable[memo_key] = found
            budgets, rates = found
            tracked = bool(budgets or rates)
            if tracked:
                worst = self.worst_usd(f, plan) if budgets else 0.0
                v = limits.admit(f.rid, f.decide_at, f.subject, budgets, rates, worst, f.reserved_tokens)
                out.admission[i], out.admission_reason[i], out.admission_limit[i] = v.kind, v.reason, v.limit
                if not v.allowed:
                    out.served_by[i], out.cost[i] = REFUSED, 0.0
                    continue
            looked = self.rows[i].lookup_at
            seq += 1
            heapq.heappush(
                events, (max(looked, f.decide_at) if looked is not None else f.decide_at, 0, seq, f, tracked)
            )
        drain(float("inf"))
        out.unpriced = set(self.costs.unpriced)
        return out

    def _checked_hit(self, out: Folded, f: Facts) -> bool:
        """The hit whose check ``f`` is was served from the semantic cache by the candidate too
        (or lies outside the window: a logged fact). Else the candidate never sampled it."""
        src = self.by_rid.get(self.rows[f.i].source)
        if src is None:
            return True
        o = out.cache[src]
        return o is not None and o.kind == "semantic-hit"

    def _saved(self, out: Folded, src: Row) -> float | None:
        """What a hit saves: its source answer's replayed cost (a source from before the
        window: its logged tokens at the candidate's price)."""
        if src.i < self.n and self.rows[src.i] is src:
            return out.cost[src.i]
        return cost_usd(self.policy, src.target, src.pt, src.ct)


def _size(window: Columns) -> int:
    """Rows of a window (a ``Window`` or a dict of lists), without reading a column."""
    return len(window) if isinstance(window, Window) else len(window["request_id"])


def _counted(policies: list[Policy], keys: bool) -> frozenset[tuple[str, str]]:
    """The (scope, window) pairs the (distinct) policies' budgets read (every window of the key
    scope when keys may carry budgets of their own)."""
    pairs = {(b.scope, b.window) for p in policies if p.budgets for b in p.budgets.limits}
    if keys:
        pairs |= {("key", w) for w in ("day", "week", "month")}
    return frozenset(pairs)


def _prepare_by_policy(
    policies: list[Policy], rs: list[Row], endpoint: list[str], bodies: Window | list[Any] | None
) -> list[Prepared]:
    """Each row's cache facts under the policy that decides it."""
    distinct = {id(p): p for p in policies}
    if len(distinct) == 1:
        return prepare(policies[0], rs, endpoint, bodies)
    out: list[Prepared | None] = [None] * len(rs)
    for key, pol in distinct.items():
        idx = [i for i, p in enumerate(policies) if id(p) == key]
        for i, prep in zip(idx, prepare(pol, [rs[i] for i in idx], [endpoint[i] for i in idx], bodies), strict=True):
            out[i] = prep
    return out  # type: ignore[return-value]


def _apply(limits: Limits, event: tuple[Any, ...]) -> None:
    at, _, _, f, cost, tokens, tracked = event
    if tracked:
        limits.settle(f.rid, at, cost, tokens)
    else:  # not tracked by any limit; its spend still counts for every scope, in its arrival window
        limits.commit(f.subject, f.decide_at, cost)
