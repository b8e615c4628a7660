"""Replay stages: one per decision concern, each wrapping the decision module's replay face.

A stage takes the candidate policy and the logged window, returns its decision columns
and a boolean Series "differs from what the live proxy decided", and adds its figures to
the summary. Adding a stage = one module in ``decisions/`` + one entry in :data:`STAGES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..decisions.routing import replay_routing

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
    for rid, route, plan, err in zip(
        window["request_id"], window["route"], window["plan"], window["error_type"], strict=True
    ):
        logged = list(plan) if plan is not None else None
        decided = replay_routing(policy, rid, route, logged, err)
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


def _routing_summary(policy: Policy, window: Columns, decisions: Columns) -> dict[str, Any]:
    routed = [t for t in decisions["replay_target"] if t]
    logged = [t for t in decisions["logged_target"] if t]
    return {
        "routing": {
            "routed": len(routed),
            "unknown_model": sum(1 for p in decisions["replay_plan"] if p == []),
            "first_target_share": _shares(routed),
            "logged_first_target_share": _shares(logged),
            "first_target_changed": sum(
                1 for a, b in zip(decisions["logged_target"], decisions["replay_target"], strict=True) if a != b
            ),
        }
    }


def _shares(values: list[str]) -> dict[str, float]:
    n = len(values)
    return {k: round(v / n, 6) for k, v in sorted(Counter(values).items())} if n else {}


STAGES: tuple[Stage, ...] = (Stage("routing", _routing, _routing_summary),)
