"""Replay stages: one per decision concern, composed in the order live serving decides.

Routing is stateless and decided first, for every request. Admission (budgets and rate
limits), the cache and the cost are then decided together by one time-ordered fold
(:mod:`.fold`): each request reads the stages before it (a refused request never reaches the
cache; a hit costs nothing, leaving budget for later requests; a cheaper route moves a budget's
cut-off). Each stage then turns the decisions into its columns, a list "differs from what the
live proxy decided", and its summary figures. Adding a stage = one module in ``decisions/``,
its place in the fold when it couples requests, and one entry in :data:`STAGES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache.bound_replay import journal_warnings
from .cache_stage import summary
from .columns import known_floats
from .costs_columnar import float_sum
from .fates import SERVED, fold_codes
from .fold import CACHE, CHECK, REFUSED, UNKNOWN_MODEL, Composer, Folded
from .fold import UPSTREAM as UPSTREAM_FATE
from .fold_columns import cache_columns, checks, cost_columns, limits_columns
from .guardrails_stage import guardrail_columns, guardrail_decisions, guardrail_summary
from .limits_stage import summarize_limits
from .routing_stage import ROUTING_COLUMNS, RoutingDecisions, route_window, summarize_routing
from .stateless import (
    SERVED_BY,
    STATELESS_COLUMNS,
    StatelessOutcome,
    is_stateless,
    stateless_cache_columns,
    stateless_cost_columns,
    stateless_limits_columns,
    stateless_outcome,
)
from .window import Window, as_window, release_memory

if TYPE_CHECKING:
    from ..decisions.limits import Limits
    from ..keys.store import KeyHistory
    from ..policy.model import Policy
    from .costs import Estimates


Columns = dict[str, Any]  # column name -> one value per logged request (list or numpy array)
Differs = Sequence[bool] | np.ndarray | None  # per request: differs from the log (None: not compared)

#: the log columns every replay reads (one scan when the window is loaded)
REPLAY_COLUMNS = (*ROUTING_COLUMNS, *STATELESS_COLUMNS, "policy_version")

#: take the columnar path (:mod:`.stateless`) when nothing in the window is stateful; False
#: always folds (tests hold the two paths equal by replaying both ways)
COLUMNAR = True


@dataclass
class Decided:
    """Everything the stages decided for a window (the composed replay's state).

    A stateless policy (:func:`.stateless.is_stateless`) is not folded: ``composer`` and
    ``folded`` are None and ``stateless`` holds its outcome as columns."""

    plans: Sequence[list[str] | None]
    routing: Columns
    routing_differs: np.ndarray
    composer: Composer | None
    folded: Folded | None
    decisions: RoutingDecisions | None = None
    stateless: StatelessOutcome | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    columns: Callable[[Policy, Columns, Decided], tuple[Columns, Differs]]
    summarize: Callable[[Policy, Columns, Columns, Decided], dict[str, Any]]
    #: decides every request of the window; the others decide those it does not block (the
    #: guardrails stage: a request blocked on input reaches no other stage)
    whole_window: bool = False


def decide(
    policy: Policy, window: Columns, history: KeyHistory | None = None, start: Limits | None = None,
    warm: Columns | None = None, fold: bool = True, versions: Mapping[str, Policy] | None = None,
    estimates: Estimates | None = None,
) -> Decided:  # fmt: skip
    """Route every request, then fold admission, cache and cost over the window (``fold``:
    False prepares the fold without running it, for a caller that runs it many times). A
    stateless policy over a :class:`.window.Window` is decided over columns instead of folded.

    ``versions`` (policy version → policy): each row is decided by the version that served
    it, when that version is given (else by ``policy``) — a window spanning reloads."""
    row_policies = [versions.get(v, policy) for v in window["policy_version"]] if versions else None
    if row_policies is not None and len({id(p) for p in row_policies}) == 1:
        policy, row_policies = row_policies[0], None
    routing, cols, differs = route_window(policy, window, row_policies)
    plans = cols["replay_plan"]
    if (fold and COLUMNAR and isinstance(window, Window) and is_stateless(policy, window, history, row_policies)
            and not checks(window).any()):  # a check's cost depends on its hit's replayed outcome: folded  # fmt: skip
        outcome = stateless_outcome(policy, window, routing, estimates)
        return Decided(plans, cols, differs, None, None, routing, outcome)
    composer = Composer(policy, window, plans, history, start, warm, row_policies, estimates)
    folded = composer.run() if fold else None
    release_memory()  # what the fold freed goes back to the system before the stages' columns are made
    return Decided(plans, cols, differs, composer, folded, routing)


def _routing_columns(policy: Policy, window: Columns, d: Decided) -> tuple[Columns, Differs]:
    return d.routing, d.routing_differs


def _limits_columns(policy: Policy, window: Columns, d: Decided) -> tuple[Columns, Differs]:
    if d.stateless is not None:
        return stateless_limits_columns(_window(window))
    assert d.folded is not None
    return limits_columns(window, d.folded)


def _cache_columns(policy: Policy, window: Columns, d: Decided) -> tuple[Columns, Differs]:
    if d.stateless is not None:
        return stateless_cache_columns(_window(window))
    assert d.folded is not None
    return cache_columns(window, d.folded)


def _cost_columns(policy: Policy, window: Columns, d: Decided) -> tuple[Columns, Differs]:
    if d.stateless is not None:
        return stateless_cost_columns(_window(window), d.stateless), None
    assert d.folded is not None
    return cost_columns(window, d.folded), None


def _cache_summary(policy: Policy, window: Columns, decisions: Columns, d: Decided) -> dict[str, Any]:
    if d.stateless is not None:  # no request reached a cache
        nothing = np.full(0, None, object)
        return {"cache": summary(window, nothing, nothing, lambda rows: [])}
    assert d.folded is not None
    saved = d.folded.column("saved")  # float64 with NaN (or float | None objects): no Python float per row
    out = summary(window, fold_codes(d.folded, "cache_kind"), saved, d.folded.source_targets)
    warnings = journal_warnings(policy, window)  # what a compacted outcome journal can no longer replay
    return {"cache": out | ({"warnings": warnings} if warnings else {})}


def _limits_summary(policy: Policy, window: Columns, decisions: Columns, d: Decided) -> dict[str, Any]:
    if d.stateless is not None:  # no limit applied: no admission decision to summarise
        return summarize_limits(policy, window, {"replay_admission": [], "replay_admission_limit": []})
    assert d.folded is not None
    return summarize_limits(policy, window, decisions, fold_codes(d.folded, "admission"))


def _cost_summary(policy: Policy, window: Columns, decisions: Columns, d: Decided) -> dict[str, Any]:
    """What the candidate would have spent, saved and refused, with the basis of each figure —
    counted over the fate codes and summed over float64 arrays (no Python object per request)."""
    codes, labels = _fates(d)
    counts = np.bincount(codes[codes >= 0], minlength=len(labels)).tolist()
    served: dict[str | None, int] = dict(zip(labels, counts, strict=True))
    upstream, w = codes == labels.index(UPSTREAM_FATE), as_window(window)
    n_checks = served.get(CHECK, 0)
    checks_of: np.ndarray | None  # the cost of each check of a semantic hit (None: one is unpriced)
    if d.stateless is not None:  # a window with checks is folded; nothing reaches a cache, nothing is refused
        o = d.stateless
        spent_of = o.cost[upstream] if o.cost_known[upstream].all() else None
        checks_of = saved = refused_logged = np.empty(0)
        unpriced, unmeasured = o.unpriced, o.unmeasured
    else:
        f = d.folded
        assert f is not None and d.composer is not None
        (cost, priced), (saved_of, saved_known) = (known_floats(f.column(k)) for k in ("cost", "saved"))
        # a check of a semantic hit is no request, but its cost is spent (0 when the candidate never sampled it)
        check = codes == labels.index(CHECK)
        checks_of = cost[check] if priced[check].all() else None
        spent_of = (
            np.concatenate([cost[upstream], checks_of]) if priced[upstream].all() and checks_of is not None else None
        )
        saved = saved_of[saved_known]
        refused_logged = np.nan_to_num(w.numpy("cost_usd")[codes == labels.index(REFUSED)])
        unpriced, unmeasured = f.unpriced, d.composer.costs.unmeasured_of(upstream)
    spent = None if spent_of is None else round(float_sum(spent_of), 6)
    n = len(codes) - n_checks
    return {
        "cost_usd": spent,
        "checks_usd": None if checks_of is None else round(float_sum(checks_of), 6),
        "logged_cost_usd": round(float_sum(w.numpy("cost_usd")[w.valid("cost_usd")]), 6),
        "cost_per_1k_requests": round(spent / n * 1000, 6) if spent is not None and n else None,
        "outcome": {
            "served_upstream": served.get(UPSTREAM_FATE, 0),
            "served_from_cache": served.get(CACHE, 0),
            "refused": served.get(REFUSED, 0),
            "unknown_model": served.get(UNKNOWN_MODEL, 0),
            "checks": n_checks,
            "not_routed": served.get(None, 0),
            "saved_by_cache_usd": round(float_sum(saved), 6),
            "logged_spend_refused_usd": round(float_sum(refused_logged), 6),
        },
        "basis": {
            "cost": "logged tokens (and cached prompt tokens) at the candidate's prices; requests that ran live on "
            "the same plan cost what their target charged for them, others the expected cost over the "
            "candidate's plan from logged per-target failure rates; requests that never ran live take their "
            "cache source's tokens, else their route's mean tokens; cache hits and refusals cost 0",
            "price_source": _price_sources(policy, d),
            "unpriced_targets": sorted(unpriced),
            "unmeasured_targets": sorted(unmeasured),
        },
    }


def _fates(d: Decided) -> tuple[np.ndarray, tuple[str | None, ...]]:
    """Each request's fate (``replay_served_by``) as a code into its labels (-1: none of them):
    the columnar outcome's codes, or the fold's (:func:`.fates.fold_codes`)."""
    if d.stateless is not None:
        return d.stateless.served_by, SERVED_BY
    assert d.folded is not None
    return fold_codes(d.folded, "served_by"), SERVED


def _guardrail_columns(policy: Policy, window: Columns, d: Decided) -> tuple[Columns, Differs]:
    return guardrail_columns(_window(window), guardrail_decisions(policy, _window(window)))


def _guardrail_summary(policy: Policy, window: Columns, decisions: Columns, d: Decided) -> dict[str, Any]:
    return guardrail_summary(policy, _window(window), guardrail_decisions(policy, _window(window)))


def _window(window: Columns) -> Window:
    """The window of a columnar (stateless) decision: always a :class:`.window.Window`."""
    assert isinstance(window, Window)
    return window


def _price_sources(policy: Policy, d: Decided) -> dict[str, str]:
    """The price source of every target of a plan some request was given."""
    from ..decisions.cost import price_source

    if d.decisions is not None:
        codes = d.decisions.plan_codes
        used = np.flatnonzero(np.bincount(codes[codes >= 0])) if codes.size else np.empty(0, np.int64)
        targets = {t for c in used.tolist() for t in d.decisions.plans[c]}
    else:
        targets = {t for p in d.plans if p for t in p}
    return {t: price_source(policy, t) for t in sorted(targets)}


STAGES: tuple[Stage, ...] = (
    Stage("routing", _routing_columns, lambda p, w, c, d: summarize_routing(p, w, c)),  # type: ignore[arg-type]
    Stage("limits", _limits_columns, _limits_summary),
    Stage("cache", _cache_columns, _cache_summary),
    Stage("cost", _cost_columns, _cost_summary),
    Stage("guardrails", _guardrail_columns, _guardrail_summary, whole_window=True),
)
