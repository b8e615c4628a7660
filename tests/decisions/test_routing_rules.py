"""Routing decisions: conditions, sticky draws, rule functions, and their validation."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llmgw_kernel import PolicyError, load_policy
from llmgw_kernel.decisions import RouteContext, estimate_prompt_tokens, plan_route, route_context

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = {"a": {"kind": "demo"}, "b": {"kind": "demo"}}


def _policy(route: dict, **extra) -> object:
    return load_policy({"providers": PROVIDERS, "routes": {"m": route}, **extra})


RULES = {
    "targets": [{"provider": "a", "model": "default"}],
    "rules": [
        {
            "name": "gold",
            "when": {"metadata": {"tier": ["gold", "platinum"]}},
            "targets": [{"provider": "b", "model": "big"}],
        },
        {
            "when": {"prompt_tokens_over": 100},
            "targets": [{"provider": "b", "model": "long"}, {"provider": "a", "model": "default"}],
        },
        {"when": {"team": "search", "tags": ["batch"]}, "targets": [{"provider": "a", "model": "cheap"}]},
    ],
}


@pytest.mark.parametrize(
    ("metadata", "chars", "first", "reason"),
    [
        ({"tier": "gold"}, 10, "b/big", "rule 'gold' (rules[0]) matched: metadata.tier=gold"),
        ({"tier": "platinum"}, 1000, "b/big", "rule 'gold'"),  # first match wins
        ({}, 404, "b/long", "rules[1] matched: prompt_tokens 101 > 100"),
        ({"team": "search", "tags": ["batch", "x"]}, 10, "a/cheap", "rules[2] matched: team=search"),
        ({"team": "search"}, 10, "a/default", "no rule matched (3 rules); default targets"),
        (None, 10, "a/default", "no rule matched"),
    ],
)
def test_conditions_first_match_wins_else_default(metadata, chars, first, reason):
    p = _policy(RULES)
    body = {"messages": [{"role": "user", "content": "x" * chars}]}
    plan = plan_route(p, "m", "req_1", route_context("req_1", "m", body, metadata))
    assert plan.first == first and reason in plan.reason


def test_prompt_estimate_is_characters_over_four():
    body = {
        "messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "efghi"}]},
        ]
    }
    assert estimate_prompt_tokens(body) == 3
    assert route_context("r", "m", None, None, prompt_tokens=42).prompt_source == "logged_prompt_tokens"


def test_sticky_user_draws_the_same_target_for_every_request_of_a_user():
    route = {
        "sticky": "user",
        "targets": [{"provider": "a", "model": "x", "weight": 50}, {"provider": "b", "model": "x", "weight": 50}],
    }
    p = _policy(route)
    firsts = {plan_route(p, "m", f"req_{i}", RouteContext(f"req_{i}", "m", user="ann")).first for i in range(50)}
    assert len(firsts) == 1
    by_user = Counter(plan_route(p, "m", "r", RouteContext("r", "m", user=f"u{i}")).first for i in range(400))
    assert 150 < by_user["a/x"] < 250  # still a 50/50 split across users
    assert "sticky user=ann" in plan_route(p, "m", "r", RouteContext("r", "m", user="ann")).reason
    assert "sticky user absent" in plan_route(p, "m", "r", RouteContext("r", "m")).reason
    meta = _policy({**route, "sticky": "metadata.session"})
    plans = {plan_route(meta, "m", f"q{i}", RouteContext(f"q{i}", "m", {"session": "s1"})).first for i in range(30)}
    assert len(plans) == 1


def test_invalid_conditions_name_their_path():
    with pytest.raises(PolicyError) as exc:
        _policy({"targets": [{"provider": "a", "model": "x"}], "sticky": "session",
                 "rules": [{"when": {}, "targets": [{"provider": "zz", "model": "y"}]}]})  # fmt: skip
    paths = {path for path, _ in exc.value.errors}
    assert "m.sticky" in str(paths) and any(p.endswith("rules[0].when") for p in paths)
    with pytest.raises(PolicyError) as exc:
        _policy(
            {
                "targets": [{"provider": "a", "model": "x"}],
                "rules": [{"when": {"team": "t"}, "targets": [{"provider": "zz", "model": "y"}]}],
            }
        )
    assert exc.value.errors[0][0] == "routes.m.rules[0].targets[0].provider"


def _write(tmp_path: Path, route: dict, module: str | None = None) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir(exist_ok=True)
    if module is not None:
        (folder / "mine.py").write_text(module)
    shutil.copy(ROOT / "policies" / "tiers.py", folder / "tiers.py")
    path = folder / "live.yaml"
    path.write_text(yaml.safe_dump({"providers": PROVIDERS, "routes": {"assistant": route}}))
    return path


TWO = {"targets": [{"provider": "a", "model": "premium"}, {"provider": "b", "model": "budget"}]}


def test_the_example_rule_function_routes_by_tier(tmp_path):
    p = load_policy(_write(tmp_path, {**TWO, "rule": "tiers:route_by_tier"}))
    gold = plan_route(p, "assistant", "r", RouteContext("r", "assistant", {"tier": "gold"}))
    assert (
        gold.targets == ("a/premium", "b/budget")
        and "tiers:route_by_tier" in gold.reason
        and "tier gold" in gold.reason
    )
    free = plan_route(p, "assistant", "r", RouteContext("r", "assistant", {}))
    assert free.targets == ("b/budget", "a/premium")
    big = plan_route(p, "assistant", "r", RouteContext("r", "assistant", {}, prompt_tokens=5000))
    assert big.first == "a/premium"


@pytest.mark.parametrize(
    ("rule", "module", "message"),
    [
        ("nope:f", None, "module 'nope' not found in policies/"),
        ("mine:g", "def f(ctx):\n    return []\n", "module 'mine' has no function 'g'"),
        ("mine:f", "def f(ctx, other):\n    return []\n", "must take exactly one argument"),
        ("mine:f", "def f():\n    return []\n", "must take exactly one argument"),
        ("mine:f", "import not_a_module_anywhere\n", "failed to import"),
    ],
)
def test_rule_functions_are_validated_at_load(tmp_path, rule, module, message):
    with pytest.raises(PolicyError) as exc:
        load_policy(_write(tmp_path, {**TWO, "rule": rule}, module))
    path, text = exc.value.errors[0]
    assert path == "routes.assistant.rule" and message in text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("raise RuntimeError('boom')", "raised RuntimeError: boom; fell back to declared targets"),
        ("return ['a/nowhere']", "returned unknown target(s) ['a/nowhere']; fell back"),
        ("return 'a/premium'", "not a non-empty list"),
    ],
)
def test_a_failing_rule_function_falls_back_to_the_declared_targets(tmp_path, body, reason, caplog):
    p = load_policy(_write(tmp_path, {**TWO, "rule": "mine:f"}, f"def f(ctx):\n    {body}\n"))
    plan = plan_route(p, "assistant", "req_9", RouteContext("req_9", "assistant"))
    assert plan.targets == ("a/premium", "b/budget") and reason in plan.reason
    assert "declared order" in plan.reason and "req_9" in caplog.text


def test_rule_module_code_is_part_of_the_policy_version(tmp_path):
    v1 = load_policy(_write(tmp_path, {**TWO, "rule": "mine:f"}, "def f(ctx):\n    return ['a/premium']\n")).version
    v2 = load_policy(_write(tmp_path, {**TWO, "rule": "mine:f"}, "def f(ctx):\n    return ['b/budget']\n")).version
    assert v1 != v2


def test_pricing_section_validates():
    p = _policy(TWO, pricing={"premium": {"input_per_1m": 5, "output_per_1m": 15}})
    assert p.pricing["premium"].output_per_1m == 15
    with pytest.raises(PolicyError) as exc:
        _policy(TWO, pricing={"premium": {"input_per_1m": -1, "output_per_1m": 1}})
    assert exc.value.errors[0][0] == "pricing.premium.input_per_1m"
