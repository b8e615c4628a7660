"""Read a policy in two steps: parse (YAML → data), then validate (data → frozen Policy).

Errors name their path, e.g. ``routes.gpt-4o-mini.targets[0].weight: Input should be
greater than or equal to 0``, so ``llmgw policy validate`` can print one line per problem.

>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"d": {"kind": "demo"}},
...                  "routes": {"demo": {"targets": [{"provider": "d", "model": "echo"}]}}})
>>> p.routes["demo"].targets[0].id
'd/echo'
>>> p.version.startswith("p-")
True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import orjson
import yaml
from pydantic import ValidationError

from .model import Policy, Target

PolicySource = str | os.PathLike[str] | Mapping[str, Any] | Policy


class PolicyError(ValueError):
    """A policy that does not validate. ``errors`` holds ``(path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        self.errors = errors
        self.source = source
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  {path or '<root>'}: {msg}" for path, msg in errors)
        super().__init__(f"{where}invalid policy ({len(errors)} error(s)):\n{lines}")


def format_path(loc: tuple[str | int, ...]) -> str:
    """``('routes', 'a', 'targets', 0, 'weight')`` → ``routes.a.targets[0].weight``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


MAX_POLICY_BYTES = 4 * 1024 * 1024
"""The largest policy file read: a real policy is a few kilobytes."""
MAX_POLICY_DEPTH = 64
"""The deepest nesting of mappings and sequences (counting through aliases) a policy may have."""
MAX_POLICY_NODES = 200_000
"""The most YAML values a policy may hold once its aliases are expanded (no "billion laughs")."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing documents nested deeper than :data:`MAX_POLICY_DEPTH` or
    holding more than :data:`MAX_POLICY_NODES` values once aliases are expanded, or an alias
    inside the node it names. PyYAML composes and constructs recursively, so a deep enough
    document would otherwise escape as ``RecursionError``; the bounds are checked while
    composing, each node's expanded depth and size computed once from its children's."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded depth, expanded size)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        try:
            if self._depth > MAX_POLICY_DEPTH:
                self._refuse(f"nested deeper than {MAX_POLICY_DEPTH} levels")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None and id(node) not in self._shape:
            if alias:  # the anchored node is still being composed: the alias is inside it
                self._refuse("an alias refers to a value that contains it")
            self._shape[id(node)] = self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """(depth, size) of ``node`` with its aliases expanded, from its children's (composed first)."""
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            return 1, 1
        depth, size = 1, 1
        for child in children:
            shape = self._shape[id(child)]
            depth, size = max(depth, shape[0] + 1), size + shape[1]
        if depth > MAX_POLICY_DEPTH:
            self._refuse(f"nested deeper than {MAX_POLICY_DEPTH} levels (through aliases)")
        if size > MAX_POLICY_NODES:
            self._refuse(f"more than {MAX_POLICY_NODES:,} values (aliases expanded)")
        return depth, size

    def _refuse(self, problem: str) -> NoReturn:
        raise yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)


def parse_policy_text(text: str, source: str | None = None) -> dict[str, Any]:
    """Step one: YAML text → a mapping (or a PolicyError saying where the YAML broke, or that it
    is larger or deeper than a policy may be: :data:`MAX_POLICY_BYTES`, :data:`MAX_POLICY_DEPTH`,
    :data:`MAX_POLICY_NODES`)."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError([("", f"a policy file is at most {MAX_POLICY_BYTES:,} bytes, got {len(text):,}")], source)
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError([("", f"{where}not valid YAML ({getattr(exc, 'problem', exc)})")], source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError([("", f"a policy is a mapping, got {type(data).__name__}")], source)
    return data


def validate_policy(data: Mapping[str, Any], source: str | None = None) -> Policy:
    """Step two: data → a frozen, cross-checked Policy with its content version."""
    try:
        policy = Policy.model_validate(dict(data))
    except ValidationError as exc:
        raise PolicyError(_readable(exc.errors()), source) from None
    errors = list(_cross_check(policy))
    errors += _load_functions(policy, source)
    errors += _compile_guardrails(policy, source)
    if errors:
        raise PolicyError(errors, source)
    policy._version = policy_version(policy)
    policy._source = source
    return policy


def load_policy(source: PolicySource) -> Policy:
    """A validated policy from a YAML path, a mapping, or an existing Policy (returned as is)."""
    if isinstance(source, Policy):
        return source
    if isinstance(source, Mapping):
        return validate_policy(source)
    path = Path(source)
    try:
        with open(path, "rb") as fh:
            data = fh.read(4 * MAX_POLICY_BYTES + 1)  # bounded (/dev/zero); UTF-8: up to 4 bytes a character
    except OSError as exc:
        raise PolicyError([("", f"cannot read policy file: {exc.strerror or exc}")], str(path)) from None
    if len(data) > 4 * MAX_POLICY_BYTES:
        raise PolicyError([("", f"a policy file is at most {MAX_POLICY_BYTES:,} characters, got more")], str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"policy file is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
        raise PolicyError([("", why)], str(path)) from None
    return validate_policy(parse_policy_text(text, str(path)), str(path))


def canonical_policy(policy: Policy) -> dict[str, Any]:
    """The policy as plain data with every default filled in: what the version hashes.
    Sections added after versions were first recorded are left out while they are absent, so
    a policy that does not use them keeps the version it always had (logged rows, the
    history and ``served_policies`` keep matching)."""
    doc = policy.model_dump(mode="json")
    for section in ("guardrails", "state"):
        if doc.get(section) is None:
            doc.pop(section, None)
    if doc.get("state", {}).get("breakers") == "local":  # added later: the default keeps versions unchanged
        doc["state"].pop("breakers")
    for route in doc["routes"].values():
        if route.get("guardrails") is None:
            route.pop("guardrails", None)
    for provider in doc["providers"].values():
        if provider.get("passthrough") is None:
            provider.pop("passthrough", None)
    return doc


def policy_version(policy: Policy) -> str:
    """``p-`` + 12 hex digits of SHA-256 over the canonical document (key order irrelevant)."""
    doc = canonical_policy(policy)
    if policy._functions:  # a rule module's code is part of what the policy decides
        doc["_rule_modules"] = {route: digest for route, (_, digest) in policy._functions.items()}
    if policy._guardrail_modules:  # so is a custom guardrail's
        doc["_guardrail_modules"] = dict(policy._guardrail_modules)
    blob = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return "p-" + hashlib.sha256(blob).hexdigest()[:12]


def _union_tag(part: str | int) -> bool:
    """A ``loc`` part pydantic adds for a member of a union (``CacheSettings``,
    ``literal[False]``, ``function-after[...]``), not a key of the document."""
    if not isinstance(part, str):
        return False
    if part.startswith(("literal[", "function-")):
        return True
    from pydantic import BaseModel

    from . import guardrail_settings, model

    cls = getattr(model, part, None) or getattr(guardrail_settings, part, None)
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def _readable(raw: list[Any]) -> list[tuple[str, str]]:
    """Pydantic's errors as ``(path, message)``: union members' tags left out of the path, and
    the ``false`` alternative of ``cache: {...} | false`` (and the like) not reported when
    the value was a mapping with errors of its own."""
    errors: list[tuple[str, str]] = []
    for e in raw:
        loc = tuple(e["loc"])
        if loc and loc[-1] == "literal[False]" and isinstance(e.get("input"), dict):
            continue
        errors.append((format_path(tuple(p for p in loc if not _union_tag(p))), _message(e)))
    return errors


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see docs/policy.md)"
    return msg


def _cross_check(policy: Policy) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    known = ", ".join(sorted(policy.providers)) or "none"
    for route_name, route in policy.routes.items():
        lists: list[tuple[tuple[str | int, ...], list[Target]]] = [(("routes", route_name, "targets"), route.targets)]
        lists += [(("routes", route_name, "rules", j, "targets"), r.targets) for j, r in enumerate(route.rules)]
        for where, targets in lists:
            for i, target in enumerate(targets):
                if target.provider not in policy.providers:
                    msg = f"unknown provider {target.provider!r} (defined: {known})"
                    errors.append((format_path((*where, i, "provider")), msg))
    return errors


def _load_functions(policy: Policy, source: str | None) -> list[tuple[str, str]]:
    """Load every route's ``rule`` function (validated at load, not at first request)."""
    from .functions import load_rule_function

    errors: list[tuple[str, str]] = []
    for route_name, route in policy.routes.items():
        if route.rule is None:
            continue
        try:
            policy._functions[route_name] = load_rule_function(route.rule, source)
        except ValueError as exc:
            errors.append((format_path(("routes", route_name, "rule")), str(exc)))
    return errors


def _compile_guardrails(policy: Policy, source: str | None) -> list[tuple[str, str]]:
    """Build every route's guardrails (detectors, custom rule functions) at load, so a bad
    entity, category or rule module is a validation error naming its path."""
    from ..guardrails.compile import compile_policy_guardrails

    return compile_policy_guardrails(policy, source)
