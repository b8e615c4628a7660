"""Route conditions: which of a route's ``rules`` matches a request (first match wins).

>>> from llmgw_kernel.policy.conditions import When
>>> from llmgw_kernel.decisions.context import RouteContext
>>> ctx = RouteContext("r", "m", {"tier": "gold"}, prompt_tokens=9000)
>>> matches(When(metadata={"tier": ["gold", "platinum"]}, prompt_tokens_over=8000), ctx)
'metadata.tier=gold, prompt_tokens 9000 > 8000'
>>> matches(When(team="search"), ctx) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .context import RouteContext

if TYPE_CHECKING:
    from ..policy.conditions import When
    from ..policy.model import Rule


def _any_of(value: Any, expected: Any) -> bool:
    options = expected if isinstance(expected, list) else [expected]
    if value is None:
        return False
    return any(value == o or str(value) == str(o) for o in options)


def matches(when: When, ctx: RouteContext) -> str | None:
    """A description of what matched, or None if any matcher fails."""
    seen: list[str] = []
    scalar = (("model", ctx.route), ("team", ctx.team), ("key", ctx.key), ("user", ctx.user))
    for name, value in scalar:
        expected = getattr(when, name)
        if expected is not None:
            if not _any_of(value, expected):
                return None
            seen.append(f"{name}={value}")
    for key, expected in (when.metadata or {}).items():
        value = ctx.metadata.get(key)
        if not _any_of(value, expected):
            return None
        seen.append(f"metadata.{key}={value}")
    if when.tags is not None:
        have = set(ctx.tags)
        if not all(t in have for t in when.tags):
            return None
        seen.append(f"tags {when.tags}")
    n = ctx.prompt_tokens
    if when.prompt_tokens_over is not None:
        if not n > when.prompt_tokens_over:
            return None
        seen.append(f"prompt_tokens {n} > {when.prompt_tokens_over}")
    if when.prompt_tokens_at_most is not None:
        if not n <= when.prompt_tokens_at_most:
            return None
        seen.append(f"prompt_tokens {n} <= {when.prompt_tokens_at_most}")
    return ", ".join(seen)


def first_match(rules: Sequence[Rule], ctx: RouteContext) -> tuple[int | None, str]:
    """(index of the first matching rule or None, the reason naming it)."""
    for i, rule in enumerate(rules):
        what = matches(rule.when, ctx)
        if what is not None:
            label = f"rule {rule.name!r} (rules[{i}])" if rule.name else f"rules[{i}]"
            return i, f"{label} matched: {what}"
    return None, f"no rule matched ({len(rules)} rules); default targets"
