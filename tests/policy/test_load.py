"""Loading and validating policies: the DESIGN.md minimal policy, error paths, versions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from llmgw_kernel import PolicyError, load_policy
from llmgw_kernel.policy.schema import policy_json_schema

MINIMAL = textwrap.dedent("""
    providers:
      local:
        kind: openai              # openai | azure | anthropic | gemini | demo (built-in, offline)
        base_url: http://127.0.0.1:9000/v1
        api_key_env: LOCAL_API_KEY
    routes:
      gpt-4o-mini:                # the model name clients send
        targets:
          - {provider: local, model: gpt-4o-mini, weight: 1}
""")


def test_minimal_policy_from_design_md(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL)
    policy = load_policy(path)
    target = policy.routes["gpt-4o-mini"].targets[0]
    assert (target.provider, target.model, target.weight) == ("local", "gpt-4o-mini", 1)
    assert policy.providers["local"].api_key_env == "LOCAL_API_KEY"
    assert policy.log.bodies == "full"  # documented default
    with pytest.raises(ValidationError):
        policy.routes["gpt-4o-mini"].targets[0].weight = 2  # frozen


def test_version_is_content_derived(tmp_path):
    a = load_policy(
        {"providers": {"d": {"kind": "demo"}}, "routes": {"m": {"targets": [{"provider": "d", "model": "x"}]}}}
    )
    b = load_policy(
        {"routes": {"m": {"targets": [{"model": "x", "provider": "d"}]}}, "providers": {"d": {"kind": "demo"}}}
    )
    c = load_policy(
        {"providers": {"d": {"kind": "demo"}}, "routes": {"m": {"targets": [{"provider": "d", "model": "y"}]}}}
    )
    assert a.version == b.version != c.version
    assert a.version.startswith("p-") and len(a.version) == 14


ERRORS = [
    ({"routes": {"m": {"targets": [{"provider": "d", "model": "x", "weight": -1}]}}, "providers": {"d": {"kind": "demo"}}},
     "routes.m.targets[0].weight", "greater than or equal to 0"),
    ({"routes": {"m": {"targets": [{"provider": "nope", "model": "x"}]}}, "providers": {"d": {"kind": "demo"}}},
     "routes.m.targets[0].provider", "unknown provider 'nope'"),
    ({"routes": {"m": {"targets": []}}}, "routes.m.targets", "at least 1"),
    ({"routes": {}, "providers": {"p": {"kind": "openai"}}}, "providers.p", "base_url is required"),
    ({"routes": {}, "providers": {"p": {"kind": "smoke-signals"}}}, "providers.p.kind", "Input should be"),
    ({"routes": {}, "cache": {"exact": {"ttl_s": 0}}}, "cache.exact.ttl_s", "greater than 0"),
    ({"routes": {}, "cache": {"semantik": {}}}, "cache.semantik", "unknown key"),
    ({"providers": {}}, "routes", "Field required"),
    ({"routes": {"m": {"targets": [{"provider": "d", "model": "x", "weight": 1}, {"provider": "d", "model": "y"}]}},
      "providers": {"d": {"kind": "demo"}}}, "routes.m", "every target has a weight or none"),
    ({"routes": {}, "log": {"bodies": "some"}}, "log.bodies", "'full', 'redacted', 'hashed' or 'none'"),
    ({"routes": {}, "pricing": {"m": {"input_per_1m": float("inf"), "output_per_1m": 1}}}, "pricing.m.input_per_1m",
     "finite number"),
    ({"routes": {}, "pricing": {"m": {"input_per_1m": 1, "output_per_1m": 1e300}}}, "pricing.m.output_per_1m",
     "less than or equal to 1000000"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "path", "fragment"), ERRORS, ids=[e[1] for e in ERRORS])
def test_errors_name_their_path(doc, path, fragment):
    with pytest.raises(PolicyError) as exc:
        load_policy(doc)
    assert any(p == path and fragment in m for p, m in exc.value.errors), exc.value.errors


def test_validate_cli(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("weight: 1", "weight: -3") + "surprise: 1\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("routes: [\n")
    run = lambda *files: subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "policy", "validate", *map(str, files)], capture_output=True, text=True
    )  # noqa: E731
    ok = run(good)
    assert ok.returncode == 0 and "ok (p-" in ok.stdout
    out = run(bad)
    assert out.returncode == 1
    assert f"{bad}: routes.gpt-4o-mini.targets[0].weight: Input should be greater than or equal to 0" in out.stdout
    assert f"{bad}: surprise: unknown key" in out.stdout
    out = run(broken)
    assert out.returncode == 1 and "not valid YAML" in out.stdout and "line 2" in out.stdout


def test_json_schema_is_exported_and_matches_the_bundled_copy():
    from importlib import resources

    schema = policy_json_schema()
    assert schema["title"] == "llmgw policy" and "routes" in schema["required"]
    bundled = json.loads(resources.files("llmgw_kernel").joinpath("schema/policy.schema.json").read_text())
    assert bundled == schema, "regenerate with: llmgw policy schema > llmgw_kernel/schema/policy.schema.json"


def test_bundled_default_policy_validates():
    from llmgw_kernel.policy.lifecycle import bundled_default_text
    from llmgw_kernel.policy.load import parse_policy_text, validate_policy

    policy = validate_policy(parse_policy_text(bundled_default_text()))
    assert policy.providers["demo"].kind == "demo" and "demo" in policy.routes


def _alias_chain(n: int) -> str:
    """``n`` anchors each holding the one before: two levels deep as written, ``n`` through its aliases."""
    return "x0: &a0 [leaf]\n" + "".join(f"x{i}: &a{i} [*a{i - 1}]\n" for i in range(1, n))


def _laughs(levels: int) -> str:
    """A "billion laughs" document: ten aliases of the level before, ``levels`` times."""
    text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
    return text + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, levels))


BOUNDED = [
    ("deep", "routes: " + "[" * 5000 + "]" * 5000 + "\n", "line 1, column 72: not valid YAML (nested deeper than 64"),
    ("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(70)), "nested deeper than 64 levels"),
    ("deep-aliases", _alias_chain(70), "nested deeper than 64 levels (through aliases)"),
    ("laughs", _laughs(7), "more than 200,000 values (aliases expanded)"),
    ("recursive", "providers: &p {d: *p}\nroutes: {}\n", "an alias refers to a value that contains it"),
    ("huge", MINIMAL + "#" * (4 * 1024 * 1024) + "\n", "a policy file is at most 4,194,304 bytes"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "fragment"), [b[1:] for b in BOUNDED], ids=[b[0] for b in BOUNDED])
def test_a_policy_too_deep_or_too_large_is_one_clear_error(tmp_path, text, fragment):
    """PyYAML composes recursively: without bounds a deep file escapes as RecursionError, and
    aliases can expand a small file into millions of values. Each is an invalid policy instead."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert len(exc.value.errors) == 1 and fragment in exc.value.errors[0][1], exc.value.errors
    assert exc.value.source == str(path)


def test_policies_within_the_bounds_load_with_their_aliases(tmp_path):
    """Anchors and aliases (a shared target list), 60 levels of nesting and 60 chained aliases are fine."""
    shared = textwrap.dedent("""
        providers: {d: {kind: demo}}
        routes:
          a: {targets: &both [{provider: d, model: x}, {provider: d, model: y}]}
          b: {targets: *both}
    """)
    path = tmp_path / "p.yaml"
    path.write_text(shared)
    policy = load_policy(path)
    assert [t.id for t in policy.routes["b"].targets] == ["d/x", "d/y"]
    for near in ("x: " + "[" * 60 + "]" * 60 + "\n", _alias_chain(60), _laughs(5)):
        path.write_text(shared + near)
        with pytest.raises(PolicyError) as exc:
            load_policy(path)
        assert [p for p, _ in exc.value.errors][-1] in ("x", "x59", "l4"), exc.value.errors  # only: unknown key
