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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..policy.model import Policy, Target


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The verdict: target ids in the order they are tried, with the reason for the order."""

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


def plan_route(policy: Policy, route: str, request_id: str) -> RoutePlan:
    """The ordered targets for ``request_id`` on ``route`` under ``policy``.

    Raises ``KeyError`` for a route the policy does not define.
    """
    targets = policy.routes[route].targets
    if len(targets) == 1:
        return RoutePlan(route, (targets[0].id,), "single target")
    if targets[0].weight is None:
        return RoutePlan(route, tuple(t.id for t in targets), "declared order (no weights)")
    u = draw(policy.version, request_id)
    index = _weighted_index(targets, u)
    first = targets[index]
    rest = tuple(t.id for i, t in enumerate(targets) if i != index)
    total = sum(t.weight or 0.0 for t in targets)
    reason = f"weighted draw u={u:.4f} picked {first.id} (weight {first.weight:g} of {total:g}); rest in order"
    return RoutePlan(route, (first.id, *rest), reason)


def _weighted_index(targets: list[Target], u: float) -> int:
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
    policy: Policy, request_id: str, route: str | None, logged_plan: list[str] | None, error_type: str | None
) -> RoutePlan | None:
    """The routing decision ``policy`` makes for one logged request (None: not routed)."""
    if not routed_live(logged_plan, error_type) or route is None:
        return None
    if route not in policy.routes:
        return RoutePlan(route, (), "unknown model (no such route)")
    return plan_route(policy, route, request_id)
