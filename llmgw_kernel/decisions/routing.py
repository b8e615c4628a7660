"""Target selection: which targets a request tries, in which order, and why.

One implementation serves the live proxy (one request) and replay (a whole log).
A weighted route draws its first target from a hash of (policy version, request id), so a
replay of the same policy over the same request makes the same draw; the other targets stay
as fallbacks in their declared order. A route without weights tries its targets in order.

>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"a": {"kind": "demo"}, "b": {"kind": "demo"}},
...     "routes": {"m": {"targets": [{"provider": "a", "model": "x", "weight": 70},
...                                  {"provider": "b", "model": "x", "weight": 30}]}}})
>>> plan = plan_route(p, "m", "req_1")
>>> sorted(plan.targets) == ["a/x", "b/x"] and plan.reason.startswith("weighted draw")
True

A route may also have a ``sticky`` key (the draw hashes that value instead of the request
id), ``rules`` (conditions; first match wins, the route's targets are the default) and a
``rule`` function (``module:function`` beside the policy file). The context those read is a
:class:`~.context.RouteContext` built by :func:`~.context.route_context` from the request.
See docs/routing.md.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..policy.model import Policy, Route, Target
from .conditions import first_match
from .context import RouteChoice, RouteContext, route_context

log = logging.getLogger("llmgw.routing")


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The verdict: target ids in the order they are tried, with the reason for the order
    (steps joined by `` | ``: rule function, matched condition, draw)."""

    route: str
    targets: tuple[str, ...]
    reason: str

    @property
    def first(self) -> str:
        return self.targets[0]


def draw(policy_version: str, request_id: str) -> float:
    """A uniform number in [0, 1) that depends only on (policy version, request id)."""
    digest = hashlib.blake2b(f"{policy_version}\x00{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def plan_route(policy: Policy, route: str, request_id: str, ctx: RouteContext | None = None) -> RoutePlan:
    """The ordered targets for ``request_id`` on ``route`` under ``policy``.

    ``ctx`` (see :func:`~.context.route_context`) feeds sticky draws, rules and rule
    functions; without it they see an empty context. Raises ``KeyError`` for an unknown route.
    """
    spec = policy.routes[route]
    if ctx is None:
        ctx = RouteContext(request_id, route)
    notes: list[str] = []
    func = policy._functions.get(route)
    if func is not None:
        chosen, note = _call_rule(func[0], spec, ctx)
        if chosen is not None:
            return RoutePlan(route, chosen, note)
        notes.append(note)
    targets: Sequence[Target] = spec.targets
    if spec.rules:
        index, why = first_match(spec.rules, ctx)
        if index is not None:
            targets = spec.rules[index].targets
        notes.append(why)
    targets_, reason = _order(policy.version, spec, targets, request_id, ctx)
    return RoutePlan(route, targets_, " | ".join([*notes, reason]))


def _order(
    version: str, spec: Route, targets: Sequence[Target], request_id: str, ctx: RouteContext
) -> tuple[tuple[str, ...], str]:
    if len(targets) == 1:
        return (targets[0].id,), "single target"
    if targets[0].weight is None:
        return tuple(t.id for t in targets), "declared order (no weights)"
    key, sticky_note = request_id, ""
    if spec.sticky is not None:
        value = sticky_value(spec.sticky, ctx)
        if value is not None:
            key, sticky_note = f"{spec.sticky}={value}", f"sticky {spec.sticky}={value}: "
        else:
            sticky_note = f"sticky {spec.sticky} absent, drawn by request id: "
    u = draw(version, key)
    index = _weighted_index(targets, u)
    first = targets[index]
    rest = tuple(t.id for i, t in enumerate(targets) if i != index)
    total = sum(t.weight or 0.0 for t in targets)
    reason = f"weighted draw u={u:.4f} picked {first.id} (weight {first.weight:g} of {total:g}); rest in order"
    return (first.id, *rest), sticky_note + reason


def sticky_value(sticky: str, ctx: RouteContext) -> str | None:
    """The value a sticky route hashes: ``user`` or ``metadata.<key>`` (None when absent)."""
    if sticky == "user":
        return ctx.user or None
    value = ctx.metadata.get(sticky.removeprefix("metadata."))
    return None if value is None or value == "" else str(value)


def _call_rule(func, spec: Route, ctx: RouteContext) -> tuple[tuple[str, ...] | None, str]:  # type: ignore[no-untyped-def]
    """Run a rule function; (targets, reason) or (None, why it was not used)."""
    ref = spec.rule
    try:
        out = func(replace(ctx, targets=tuple(t.id for t in spec.all_targets)))
    except Exception as exc:  # the contract: any failure falls back to the declared targets
        log.warning("rule %s raised %s for %s; declared targets used", ref, exc, ctx.request_id)
        return None, f"rule function {ref} raised {type(exc).__name__}: {exc}; fell back to declared targets"
    ids, why = (out.targets, out.reason) if isinstance(out, RouteChoice) else (out, "")
    known = {t.id for t in spec.all_targets}
    if isinstance(ids, str) or not isinstance(ids, (list, tuple)) or not ids:
        problem = f"returned {type(ids).__name__} {ids!r}, not a non-empty list of target ids"
    else:
        unknown = [i for i in ids if i not in known]
        problem = f"returned unknown target(s) {unknown}" if unknown else ""
    if problem:
        log.warning("rule %s %s for %s; declared targets used", ref, problem, ctx.request_id)
        return None, f"rule function {ref} {problem}; fell back to declared targets"
    chosen = tuple(dict.fromkeys(str(i) for i in ids))
    return chosen, f"rule function {ref} chose {list(chosen)}" + (f": {why}" if why else "")


def _weighted_index(targets: Sequence[Target], u: float) -> int:
    total = sum(t.weight or 0.0 for t in targets)
    point = u * total
    acc = 0.0
    last_positive = 0
    for i, t in enumerate(targets):
        w = t.weight or 0.0
        if w <= 0:
            continue
        last_positive = i
        acc += w
        if point < acc:
            return i
    return last_positive  # guards float rounding at u→1


# -- replay face ----------------------------------------------------------------------------
ROUTABLE_ERRORS = frozenset({"model_not_found"})


def routed_live(plan: list[str] | None, error_type: str | None) -> bool:
    """Whether the live proxy reached the routing decision for a logged request.

    Requests rejected before routing for reasons that are not the policy's (malformed JSON,
    a schema error, a body over the limit, a client that left) have no routing decision
    live or in replay. An unknown model *is* the policy's decision: a candidate that adds
    the route would route it.
    """
    return plan is not None or error_type in ROUTABLE_ERRORS


def replay_routing(
    policy: Policy,
    request_id: str,
    route: str | None,
    logged_plan: list[str] | None,
    error_type: str | None,
    ctx: RouteContext | None = None,
) -> RoutePlan | None:
    """The routing decision ``policy`` makes for one logged request (None: not routed)."""
    if not routed_live(logged_plan, error_type) or route is None:
        return None
    if route not in policy.routes:
        return RoutePlan(route, (), "unknown model (no such route)")
    return plan_route(policy, route, request_id, ctx)


__all__ = ["RoutePlan", "draw", "plan_route", "replay_routing", "route_context", "routed_live", "sticky_value"]
