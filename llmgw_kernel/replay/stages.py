"""Replay stages: one per decision concern, each wrapping the decision module's replay face.

A stage takes the candidate policy and the logged window, returns its decision columns
and a boolean Series "differs from what the live proxy decided", and adds its figures to
the summary. Adding a stage = one module in ``decisions/`` + one entry in :data:`STAGES`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..decisions.context import RouteContext, route_context
from ..decisions.routing import replay_routing
from .cache_stage import replay_cache, summarize_cache
from .columns import json_value
from .limits_stage import replay_limits, summarize_limits
from .routing_estimates import estimate, logged_cost

if TYPE_CHECKING:
    from ..policy.model import Policy


Columns = dict[str, list[Any]]  # column name -> one value per logged request


@dataclass(frozen=True)
class Stage:
    name: str
    replay: Callable[[Policy, Columns], tuple[Columns, list[bool]]]
    summarize: Callable[[Policy, Columns, Columns], dict[str, Any]]


def _routing(policy: Policy, window: Columns) -> tuple[Columns, list[bool]]:
    plans: list[list[str] | None] = []
    firsts: list[str | None] = []
    reasons: list[str | None] = []
    logged_firsts: list[str | None] = []
    differs: list[bool] = []
    for i, (rid, route, plan, err) in enumerate(
        zip(window["request_id"], window["route"], window["plan"], window["error_type"], strict=True)
    ):
        logged = list(plan) if plan is not None else None
        ctx = logged_context(window, i) if route is not None else None
        decided = replay_routing(policy, rid, route, logged, err, ctx)
        new_plan = list(decided.targets) if decided is not None else None
        plans.append(new_plan)
        firsts.append(new_plan[0] if new_plan else None)
        reasons.append(decided.reason if decided is not None else None)
        logged_firsts.append(logged[0] if logged else None)
        differs.append((logged or None) != (new_plan or None))
    cols: Columns = {
        "logged_target": logged_firsts,
        "replay_target": firsts,
        "replay_plan": plans,
        "replay_route_reason": reasons,
    }
    return cols, differs


def logged_context(window: Columns, i: int) -> RouteContext:
    """The routing context of logged request ``i``, rebuilt as the live pipeline built it.

    The body is the logged ``request_body`` (bodies: full) with ``metadata`` removed, as
    the pipeline does; ``/v1/messages`` bodies are translated to OpenAI form first. Without
    a logged body (bodies: hashed | none) the prompt size is the logged ``prompt_tokens``
    and the body's ``user`` is unknown (metadata.user still applies): conditions on prompt
    size and sticky-by-body-user may then differ from live.
    """
    body = json_value(window["request_body"][i]) if "request_body" in window else None
    if not isinstance(body, dict) or "unparsed" in body:
        body = None
    elif (window.get("api") or [None] * (i + 1))[i] == "anthropic":
        from ..proxy.anthropic_request import to_openai_request

        with contextlib.suppress(Exception):  # rejected live too: keep the raw body
            body = to_openai_request(body)
    if body is not None:
        body = {k: v for k, v in body.items() if k != "metadata"}
    metadata = json_value(window["metadata"][i]) if "metadata" in window else None
    return route_context(
        window["request_id"][i], window["route"][i], body, metadata if isinstance(metadata, dict) else None,
        window["prompt_tokens"][i],
    )  # fmt: skip


def _routing_summary(policy: Policy, window: Columns, decisions: Columns) -> dict[str, Any]:
    routed = [t for t in decisions["replay_target"] if t]
    logged = [t for t in decisions["logged_target"] if t]
    estimates = estimate(policy, window, decisions["replay_plan"])
    baseline = logged_cost(policy, window)
    return {
        "cost_usd": estimates["cost_usd"],
        "logged_cost_usd": baseline["cost_usd"],
        "routing": {
            "estimates": estimates,
            "logged_unpriced_targets": baseline["unpriced_targets"],
            "routed": len(routed),
            "unknown_model": sum(1 for p in decisions["replay_plan"] if p == []),
            "first_target_share": _shares(routed),
            "logged_first_target_share": _shares(logged),
            "first_target_changed": sum(
                1 for a, b in zip(decisions["logged_target"], decisions["replay_target"], strict=True) if a != b
            ),
        },
    }


def _shares(values: list[str]) -> dict[str, float]:
    n = len(values)
    return {k: round(v / n, 6) for k, v in sorted(Counter(values).items())} if n else {}


STAGES: tuple[Stage, ...] = (
    Stage("routing", _routing, _routing_summary),
    Stage("cache", replay_cache, summarize_cache),
    Stage("limits", replay_limits, summarize_limits),
)
