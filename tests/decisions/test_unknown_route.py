"""Regression (issue 13): `plan_route(policy, "assistant", ...)` on the bundled policy raised a
bare `KeyError: 'assistant'`. An unknown route is an UnknownRoute (still a KeyError) that names
the routes the policy has — from plan_route, plan_routes and explain_route alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgw_kernel import load_policy, plan_route
from llmgw_kernel.decisions.explain import explain_route
from llmgw_kernel.decisions.routing import UnknownRoute, plan_routes

BUNDLED = Path(__file__).resolve().parents[2] / "llmgw_kernel" / "defaults" / "default_policy.yaml"


@pytest.mark.parametrize("call", [
    lambda p: plan_route(p, "assistant", "req_1"),
    lambda p: plan_routes(p, "assistant", ["req_1"]),
    lambda p: explain_route(p, "assistant"),
])  # fmt: skip
def test_an_unknown_route_names_the_routes_there_are(call) -> None:
    policy = load_policy(BUNDLED)
    with pytest.raises(KeyError) as caught:
        call(policy)
    assert isinstance(caught.value, UnknownRoute)
    assert str(caught.value) == (
        "unknown model 'assistant': the policy has no such route "
        "(routes: demo, demo-embedding, gpt-4o, gpt-4o-mini, text-embedding-3-small)"
    )
