"""The ``guardrails`` policy section: validation with paths, per-route overrides, custom rules
loaded from the policy's folder and part of its version, and versions of policies without
guardrails left as they were."""

from __future__ import annotations

import textwrap

import pytest

from llmgw_kernel import PolicyError, load_policy
from llmgw_kernel.policy.functions import rule_module_files

BASE = {"providers": {"d": {"kind": "demo"}}, "routes": {"m": {"targets": [{"provider": "d", "model": "x"}]}}}
RULE = textwrap.dedent("""
    from llmgw_kernel.guardrails.findings import Finding

    def codes(text):
        i = text.find("CODE-")
        return [Finding("CODE", i, i + 9, 1.0, "")] if i >= 0 and len(text) >= i + 9 else []
""")


def test_versions_of_policies_without_guardrails_are_unchanged():
    """Pinned before the guardrails section existed: logged rows and the history keep matching."""
    assert load_policy({**BASE, "cache": {"exact": {}}}).version == "p-7753afadc13b"
    assert load_policy("llmgw_kernel/defaults/default_policy.yaml").version == "p-cf2dbd72dd57"


ERRORS = [
    ({"input": [{"type": "pii", "action": "mask"}]}, "guardrails.input[0].action", "'redact', 'block' or 'flag'"),
    ({"input": [{"type": "pii", "action": "flag", "languages": ["fr"]}]}, "guardrails.input[0].languages[0]",
     "'en' or 'vi'"),
    ({"input": [{"type": "custom", "action": "flag"}]}, "guardrails.input[0]", "type: custom needs rule"),
    ({"input": [{"type": "pii", "action": "flag", "rule": "a:b"}]}, "guardrails.input[0]", "rule is only for"),
    ({"input": [{"type": "pii", "action": "flag", "categories": ["x"]}]}, "guardrails.input[0]",
     "categories is only for type: content"),
    ({"input": [{"type": "injection", "action": "flag", "entities": ["PERSON"]}]}, "guardrails.input[0]",
     "entities is only for type: pii"),
    ({"output": [{"type": "pii", "action": "redact", "colour": "red"}]}, "guardrails.output[0].colour", "unknown key"),
    ({"input": [{"type": "pii", "action": "flag", "threshold": 2}]}, "guardrails.input[0].threshold", "less than"),
    ({"input": [{"type": "pii", "action": "flag", "entities": ["PHONE"]}]}, "guardrails.input[0].entities",
     "unknown PII types ['PHONE']"),
    ({"input": [{"type": "custom", "action": "flag", "rule": "missing:f"}]}, "guardrails.input[0].rule",
     "module 'missing' not found"),
    ({"input": [{"type": "pii", "action": "flag", "name": "x"}, {"type": "pii", "action": "redact", "name": "x"}]},
     "guardrails", "the name 'x' is used by another check"),
    ({"stream_holdback_chars": -1}, "guardrails.stream_holdback_chars", "greater than or equal to 0"),
]  # fmt: skip


@pytest.mark.parametrize(("guardrails", "path", "fragment"), ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_errors_name_their_path(guardrails, path, fragment):
    with pytest.raises(PolicyError) as exc:
        load_policy({**BASE, "guardrails": guardrails})
    assert any(p == path and fragment in m for p, m in exc.value.errors), exc.value.errors


def test_a_route_override_error_names_the_route_and_shows_no_union_noise():
    route = {**BASE["routes"]["m"], "guardrails": {"output": [{"type": "pii", "action": "nope"}]}}
    doc = {**BASE, "guardrails": {"input": []}, "routes": {"m": route}}
    with pytest.raises(PolicyError) as exc:
        load_policy(doc)
    assert exc.value.errors == [("routes.m.guardrails.output[0].action", "Input should be 'redact', 'block' or 'flag'")]


def test_a_route_replaces_the_keys_it_names_and_false_turns_guardrails_off():
    top = {"input": [{"type": "pii", "action": "redact"}], "output": [{"type": "pii", "action": "flag"}]}
    doc = {**BASE, "guardrails": top, "routes": {
        "m": BASE["routes"]["m"],
        "own-input": {**BASE["routes"]["m"], "guardrails": {"input": [{"type": "pii", "action": "block"}]}},
        "none": {**BASE["routes"]["m"], "guardrails": False},
        "no-input": {**BASE["routes"]["m"], "guardrails": {"input": []}},
    }}  # fmt: skip
    p = load_policy(doc)
    g = p._guardrails
    assert [(c.name, c.action) for c in g["m"].input] == [("input[0]:pii", "redact")]
    assert [c.action for c in g["own-input"].input] == ["block"] and [c.action for c in g["own-input"].output] == [
        "flag"
    ]
    assert "none" not in g and p.guardrails_for("none") is None
    assert g["no-input"].input == () and len(g["no-input"].output) == 1
    assert g["m"].output[0] is g["own-input"].output[0]  # a top-level check is compiled once


def test_custom_rules_load_from_the_policy_folder_and_are_part_of_its_version(tmp_path):
    (tmp_path / "checks.py").write_text(RULE)
    policy_file = tmp_path / "live.yaml"
    policy_file.write_text(
        "providers: {d: {kind: demo}}\nroutes: {m: {targets: [{provider: d, model: x}]}}\n"
        "guardrails: {input: [{type: custom, rule: 'checks:codes', action: redact}]}\n"
    )
    first = load_policy(policy_file)
    check = first._guardrails["m"].input[0]
    assert [(f.type, f.rule) for f in check.detector.find("see CODE-1234 here")] == [("CODE", "checks:codes")]
    assert rule_module_files({"guardrails": {"input": [{"type": "custom", "rule": "checks:codes"}]},
                              "routes": {"m": {"guardrails": {"output": [{"rule": "pkg.more:f"}]}}}}) == [
        "checks.py", "pkg/more.py"]  # fmt: skip
    (tmp_path / "checks.py").write_text(RULE + "\n# edited\n")
    assert load_policy(policy_file).version != first.version
    (tmp_path / "checks.py").write_text("def codes(text, other):\n    return []\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(policy_file)
    assert exc.value.errors == [
        ("guardrails.input[0].rule", "checks:codes must take exactly one argument (text: str), got (text, other)")
    ]


def test_promote_installs_and_rollback_restores_a_custom_guardrails_module(tmp_path):
    """A custom guardrail's module travels with its version, like a routing rule's."""
    from llmgw_kernel.policy.lifecycle import promote, rollback

    live_dir, cand_dir = tmp_path / "live", tmp_path / "cand"
    live_dir.mkdir()
    cand_dir.mkdir()
    live = live_dir / "live.yaml"
    live.write_text("providers: {d: {kind: demo}}\nroutes: {m: {targets: [{provider: d, model: x}]}}\n")
    candidate = cand_dir / "candidate.yaml"
    candidate.write_text(
        live.read_text() + "guardrails: {input: [{type: custom, rule: 'checks:codes', action: block}]}\n"
    )
    (cand_dir / "checks.py").write_text(RULE)
    promote(candidate, live)
    assert (live_dir / "checks.py").read_text() == RULE
    assert load_policy(live)._guardrails["m"].input[0].action == "block"
    rollback(live)
    assert load_policy(live).guardrails is None


def test_a_route_cache_error_has_the_same_clean_path():
    """Regression: pydantic's union tags leaked into paths of a route's ``cache: {...} | false``
    (``routes.m.cache.CacheSettings.exact.ttl_s`` plus a second error ``routes.m.cache.literal[False]``)."""
    route = {**BASE["routes"]["m"], "cache": {"exact": {"ttl_s": -1}}}
    with pytest.raises(PolicyError) as exc:
        load_policy({**BASE, "routes": {"m": route}})
    assert exc.value.errors == [("routes.m.cache.exact.ttl_s", "Input should be greater than 0")]
